"""Font glyphs rendered offline from the fonts that ship with matplotlib (SPEC 8).

Classes are characters: upper- and lower-case Latin letters, digits, math
symbols and currency symbols. Every (character, font) pair a font really
contains (non-zero glyph index, non-empty ink) is one example; the train and
test splits are disjoint sets of *font families* (:data:`FAMILIES`,
:data:`FAMILY_SPLITS`): no style of a family whose fonts are held out is
trained on. The ``test`` split of a source is one of two held-out family
sets, chosen by ``heldout``: ``"select"`` (STIX General; the default: every
choice made during or after meta-training is made on it) or ``"final"``
(Computer Modern, letters and digits only: the glyph evaluation reported
beside the transfer datasets, used for no choice). A character kept as a
class has at least one train font and at least two held-out fonts, so that
the support and the query examples of a few-shot trial can be glyphs of
different fonts (:meth:`refimpl.data.base.Dataset.support_query_batch`).

Rendering (once per process, cached): FreeType through ``matplotlib.ft2font``
(no system fonts, no network), unhinted, antialiased, at ``HIRES = 4`` times
the output resolution. Per font the size is set so that the capital ``H`` is
``cap_height`` output pixels tall (0.6 of the image side); a glyph whose ink
is larger than ``max_extent`` (0.75 of the side) in either direction is
re-rendered smaller to fit. The ink's bounding box is centred on the image
centre. The unaugmented image is the 4x4 block average of the high-resolution
one.

Augmentation (per draw): the glyph is rotated counter-clockwise (as
displayed) by ``angle`` ~ U[-max_angle, max_angle] degrees about the image
centre, then shifted right by ``dx`` and down by ``dy`` output pixels, each
~ U[-max_shift, max_shift]. Regression targets (n_reg = 4, SPEC 6):
``[sin(angle), cos(angle), dx / max_shift, dy / max_shift]`` (the shift
columns are 0 when ``max_shift`` is 0). The output pixel value is the mean of
``supersample**2`` bilinear samples of the high-resolution image at the
inverse-transformed sub-pixel positions (:func:`bilinear_sample`, vectorised
over the batch); at angle 0 and shift 0
that is exactly the unaugmented image.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .base import SPLITS, Source

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
MATH = "+\u2212\u00d7\u00f7=\u2260<>\u2264\u2265\u00b1\u221e\u221a\u2211\u222b\u2202\u2207\u220f\u2248\u2208\u2200\u2203\u2205\u2229\u222a\u2282\u03c0%"
CURRENCY = "$\u20ac\u00a3\u00a5\u00a2\u20b9\u20a9\u20bd\u20ba\u20aa\u20ab\u20b4\u20a6\u20bf"
#: The default character set (classes, in this order, minus any no font split has).
DEFAULT_CHARS = UPPER + LOWER + DIGITS + MATH + CURRENCY

#: Font families (file names in matplotlib's mpl-data/fonts/ttf). A family is every style of one
#: design. The three DejaVu families share a design lineage, so they sit in one split together.
FAMILIES = {
    "DejaVu Sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
                    "DejaVuSans-BoldOblique.ttf"),
    "DejaVu Serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
                     "DejaVuSerif-BoldItalic.ttf"),
    "DejaVu Sans Mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
                         "DejaVuSansMono-BoldOblique.ttf"),
    "STIX General": ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"),
    # BaKoMa's Computer Modern: its cmaps put TeX glyphs at ASCII code points, so beyond letters and
    # digits a code point may show another glyph (in cmr10 '<' is an inverted exclamation mark).
    "Computer Modern": ("cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmmi10.ttf"),
}
#: The families of each split: ``train`` for meta-training, ``select`` for every choice (snapshot,
#: inner steps, the baselines' settings), ``final`` for the reported glyph evaluation only.
FAMILY_SPLITS = {
    "train": ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono"),
    "select": ("STIX General",),
    "final": ("Computer Modern",),
}
#: The characters a split's fonts show faithfully (None: all; Computer Modern: see FAMILIES).
SPLIT_CHARS = {"train": None, "select": None, "final": UPPER + LOWER + DIGITS}
#: Named class sets, for ``get_dataset(..., exclude_classes=("digits",))``.
CLASS_SETS = {"upper": UPPER, "lower": LOWER, "letters": UPPER + LOWER, "digits": DIGITS, "math": MATH,
              "currency": CURRENCY}


def split_fonts(split: str) -> tuple:
    """The font files of ``split`` (a key of :data:`FAMILY_SPLITS`)."""
    if split not in FAMILY_SPLITS:
        raise ValueError(f"glyphs: unknown font split {split!r}; known: {', '.join(FAMILY_SPLITS)}")
    return tuple(f for fam in FAMILY_SPLITS[split] for f in FAMILIES[fam])


def family_of(font: str) -> str:
    """The family (a key of :data:`FAMILIES`) of the font file ``font``."""
    name = Path(font).name
    for fam, files in FAMILIES.items():
        if name in files:
            return fam
    raise ValueError(f"glyphs: font {name!r} is in no family of FAMILIES")


#: The meta-training fonts and the default held-out fonts (the ``select`` families).
TRAIN_FONTS = split_fonts("train")
TEST_FONTS = split_fonts("select")
#: A class needs glyphs in at least this many held-out fonts (support and query from different fonts).
MIN_HELDOUT_FONTS = 2

HIRES = 4


def font_dir() -> Path:
    import matplotlib
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _no_hinting_flag():
    from matplotlib import ft2font
    flags = getattr(ft2font, "LoadFlags", None)
    return flags.NO_HINTING if flags is not None else ft2font.LOAD_NO_HINTING


def _ink(font, char: str, size: float) -> np.ndarray:
    """The antialiased bitmap of ``char`` at ``size`` pixels per em, cropped to its ink."""
    font.set_size(size, 72)
    font.set_text(char, 0.0, flags=_no_hinting_flag())
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0), np.float32)
    return img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def render_font(path, chars: str, side: int, cap_height: float, max_extent: float):
    """High-resolution canvases ``[n, side*HIRES, side*HIRES]`` of the ``chars`` the font has.

    Returns ``(canvases, kept_chars)``.
    """
    from matplotlib import ft2font
    font = ft2font.FT2Font(str(path))
    hi = side * HIRES
    ref = 200.0
    h_ink = _ink(font, "H", ref)
    if font.get_char_index(ord("H")) == 0 or h_ink.size == 0:
        raise ValueError(f"{path}: font has no capital H to set its size by")
    size = ref * cap_height * HIRES / h_ink.shape[0]
    limit = max_extent * HIRES
    out, kept = [], []
    for ch in chars:
        if font.get_char_index(ord(ch)) == 0:
            continue
        ink = _ink(font, ch, size)
        if ink.size == 0 or ink.max() <= 0.05:
            continue
        if max(ink.shape) > limit:
            ink = _ink(font, ch, size * limit / max(ink.shape))
            ink = ink[:hi, :hi]
        canvas = np.zeros((hi, hi), np.float32)
        h, w = ink.shape
        top, left = (hi - h) // 2, (hi - w) // 2
        canvas[top:top + h, left:left + w] = ink
        out.append(canvas)
        kept.append(ch)
    return (np.stack(out) if out else np.zeros((0, hi, hi), np.float32)), kept


def block_mean(images: np.ndarray, f: int) -> np.ndarray:
    """Average non-overlapping ``f x f`` blocks of ``images [n, H, W]``."""
    n, h, w = images.shape
    return images.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4))


def bilinear_sample(images: np.ndarray, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``images [m, H, W]``: ``out[i, ...] = images[idx[i]]`` at ``(rows[i, ...],
    cols[i, ...])`` (fractional pixel coordinates); 0 outside ``[0, H-1] x [0, W-1]``.

    What ``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=0)`` computes on the
    stacked images, as four gathers: this is the meta-training hot spot, and the gathers beat calling
    map_coordinates image by image (benchmarks/RESULTS.md, "Glyph warping: four gathers").
    """
    m, H, W = images.shape
    n = len(idx)
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(images.dtype), (cols - c0).astype(images.dtype)
    inside = (rows >= 0) & (rows <= H - 1) & (cols >= 0) & (cols <= W - 1)
    r0 = np.clip(r0.astype(np.int64), 0, H - 1)
    c0 = np.clip(c0.astype(np.int64), 0, W - 1)
    r1, c1 = np.minimum(r0 + 1, H - 1), np.minimum(c0 + 1, W - 1)
    flat = images.reshape(-1)
    base = np.asarray(idx, np.int64).reshape((n,) + (1,) * (rows.ndim - 1)) * (H * W)
    top = flat[base + r0 * W + c0] * (1 - fc) + flat[base + r0 * W + c1] * fc
    bottom = flat[base + r1 * W + c0] * (1 - fc) + flat[base + r1 * W + c1] * fc
    return np.where(inside, top * (1 - fr) + bottom * fr, 0)


@functools.lru_cache(maxsize=8)
def _render_all(chars: str, train_fonts: tuple, test_fonts: tuple, test_chars, side: int,
                cap_height: float, max_extent: float):
    fdir = font_dir()
    per_split = {}
    for split, fonts in (("train", train_fonts), ("test", test_fonts)):
        entries = []
        wanted = chars if split == "train" or test_chars is None else "".join(c for c in chars if c in test_chars)
        for fname in fonts:
            path = Path(fname) if Path(fname).is_absolute() else fdir / fname
            if not path.is_file():
                raise FileNotFoundError(f"glyphs: font file {path} not found (matplotlib ships it "
                                        f"in {fdir}); pass fonts that exist")
            canv, kept = render_font(path, wanted, side, cap_height, max_extent)
            entries.append((canv, kept, Path(fname).name))
        per_split[split] = entries
    have_train = {c for _, kept, _ in per_split["train"] for c in kept}
    n_test = {}
    for _, kept, _ in per_split["test"]:
        for c in kept:
            n_test[c] = n_test.get(c, 0) + 1
    classes = [c for c in dict.fromkeys(chars) if c in have_train and n_test.get(c, 0) >= MIN_HELDOUT_FONTS]
    cid = {c: i for i, c in enumerate(classes)}
    data = {}
    for split in SPLITS:
        canv, labels, fonts = [], [], []
        for arr, kept, fname in per_split[split]:
            sel = [i for i, c in enumerate(kept) if c in cid]
            canv.append(arr[sel])
            labels += [cid[kept[i]] for i in sel]
            fonts += [fname] * len(sel)
        hires = np.concatenate(canv)
        hires.setflags(write=False)
        data[split] = (hires, np.asarray(labels, np.int64), tuple(fonts))
    return tuple(classes), data


class GlyphSource(Source):
    """Glyph images ``side x side`` in [0, 1] with rotation/shift augmentation (see module docstring)."""

    def __init__(self, chars: str = DEFAULT_CHARS, train_fonts=TRAIN_FONTS, test_fonts=None,
                 side: int = 14, augment: bool = True, max_angle: float = 30.0,
                 max_shift: float = 2.0, supersample: int = 2, cap_height: float | None = None,
                 max_extent: float | None = None, regression_targets: bool = True, heldout: str = "select"):
        """``test_fonts`` default: the fonts of the ``heldout`` families (``"select"`` or ``"final"``,
        :data:`FAMILY_SPLITS`), showing the characters :data:`SPLIT_CHARS` allows there."""
        if not isinstance(side, int) or side < 4:
            raise ValueError(f"glyphs: side must be an int >= 4, got {side!r}")
        if supersample not in (2, 4):
            # 2 and 4 make the identity transform reproduce the 4x4 block mean exactly
            raise ValueError(f"glyphs: supersample must be 2 or 4, got {supersample!r}")
        if not 0 <= max_angle <= 180:
            raise ValueError(f"glyphs: max_angle must be in [0, 180] degrees, got {max_angle!r}")
        if not 0 <= max_shift <= side / 2:
            raise ValueError(f"glyphs: max_shift must be in [0, side/2], got {max_shift!r}")
        if not chars:
            raise ValueError("glyphs: chars is empty")
        if heldout not in ("select", "final"):
            raise ValueError(f"glyphs: heldout must be 'select' or 'final', got {heldout!r}")
        test_chars = None
        if test_fonts is None:
            test_fonts, test_chars = split_fonts(heldout), SPLIT_CHARS[heldout]
        if set(train_fonts) & set(test_fonts):
            raise ValueError("glyphs: a font is in both the train and the test fonts")
        known = {f for files in FAMILIES.values() for f in files}
        shared = ({family_of(f) for f in train_fonts if Path(f).name in known}
                  & {family_of(f) for f in test_fonts if Path(f).name in known})
        if shared:
            raise ValueError(f"glyphs: the font family {sorted(shared)[0]!r} has fonts in both the train "
                             f"and the test fonts; hold out whole families")
        cap_height = 0.6 * side if cap_height is None else float(cap_height)
        max_extent = 0.75 * side if max_extent is None else float(max_extent)
        classes, data = _render_all(str(chars), tuple(train_fonts), tuple(test_fonts), test_chars, side,
                                    cap_height, max_extent)
        if len(classes) == 0:
            raise ValueError(f"glyphs: no character is present in a train font and in {MIN_HELDOUT_FONTS} "
                             f"test fonts")
        self.name = "glyphs"
        self.heldout = heldout if test_chars is not None else "custom"
        self.class_sets = CLASS_SETS
        self.side = side
        self.image_shape = (side, side)
        self.n_features = side * side
        self.class_names = classes
        self.augmented = bool(augment)
        # regression_targets=False keeps the augmentation but not its parameters as targets
        self.n_reg = 4 if augment and regression_targets else 0
        self.max_angle = float(max_angle)
        self.max_shift = float(max_shift)
        self.supersample = supersample
        self.hires = {s: data[s][0] for s in SPLITS}
        self.labels = {s: data[s][1] for s in SPLITS}
        self.fonts = {s: data[s][2] for s in SPLITS}
        self.base = {s: block_mean(self.hires[s], HIRES).reshape(-1, self.n_features)
                     for s in SPLITS}
        # Sub-pixel sample positions, relative to the image centre, in high-resolution pixels.
        step = HIRES // supersample
        sub = np.arange(side * supersample) * step + (step - 1) / 2.0 - (side * HIRES - 1) / 2.0
        self._grid_r, self._grid_c = np.meshgrid(sub, sub, indexing="ij")

    def clean(self, idx, split, dtype):
        return self.base[split][idx].astype(dtype)

    def sample_params(self, rng, n: int):
        """Random ``(angle_degrees, dx, dy)``, each ``[n]``."""
        angle = rng.uniform(-self.max_angle, self.max_angle, size=n)
        shift = rng.uniform(-self.max_shift, self.max_shift, size=(2, n))
        return angle, shift[0], shift[1]

    def targets(self, angle, dx, dy) -> np.ndarray:
        """Regression targets ``[n, 4]``: sin, cos of the angle, dx and dy over max_shift."""
        a = np.deg2rad(angle)
        scale = 1.0 / self.max_shift if self.max_shift > 0 else 0.0
        return np.stack([np.sin(a), np.cos(a), np.asarray(dx) * scale, np.asarray(dy) * scale], axis=1)

    def render_plain(self, idx, split, angle, dx, dy, dtype=np.float32) -> np.ndarray:
        """Examples ``idx`` rotated by ``angle`` degrees (CCW) and shifted by (dx, dy) output pixels:
        the definition, written plainly. :meth:`render` computes the same numbers, bit for bit, faster."""
        idx = np.asarray(idx)
        n = len(idx)
        a = np.deg2rad(np.asarray(angle, np.float64)).reshape(n, 1, 1)
        cos, sin = np.cos(a), np.sin(a)
        centre = (self.side * HIRES - 1) / 2.0
        # Output point p' = centre + R(angle) (p - centre) + shift; invert: p = centre + R^-1 (p' - shift).
        r = self._grid_r[None] - HIRES * np.asarray(dy, np.float64).reshape(n, 1, 1)
        c = self._grid_c[None] - HIRES * np.asarray(dx, np.float64).reshape(n, 1, 1)
        src_c = c * cos - r * sin + centre
        src_r = c * sin + r * cos + centre
        vals = bilinear_sample(self.hires[split], idx, src_r, src_c)
        s, side = self.supersample, self.side
        out = vals.reshape(n, side, s, side, s).mean(axis=(2, 4))
        return np.clip(out, 0.0, 1.0).reshape(n, self.n_features).astype(dtype)

    #: Examples rendered per chunk by :meth:`render` (the float64 coordinates of a chunk stay in cache).
    RENDER_CHUNK = 128

    def render(self, idx, split, angle, dx, dy, dtype=np.float32) -> np.ndarray:
        """:meth:`render_plain`'s result, bit for bit, in chunks of :data:`RENDER_CHUNK` examples.

        The same floating-point operations on the same values: the coordinates are formed by
        broadcasting a row and a column (``c cos`` varies along the columns only, ``r sin`` along
        the rows), the four bilinear gathers read a copy of the images with a zero row and column
        appended (where a neighbour is read there, its weight is exactly 0, as in the clamped read),
        and the 2 x 2 supersample mean is written as numpy's reduction computes it:
        ``((v00 + v01) + (v10 + v11)) / 4``.
        """
        idx = np.asarray(idx)
        n = len(idx)
        angle, dx, dy = (np.broadcast_to(np.asarray(v, np.float64), (n,)) for v in (angle, dx, dy))
        out = np.empty((n, self.n_features), dtype=dtype)
        for start in range(0, n, self.RENDER_CHUNK):
            part = slice(start, start + self.RENDER_CHUNK)
            out[part] = self._render_chunk(idx[part], split, angle[part], dx[part], dy[part])
        return out

    def _padded(self, split):
        """``hires[split]`` with a zero row and column appended to every image, flattened (built once)."""
        cache = self.__dict__.setdefault("_padded_cache", {})
        if split not in cache:
            images = self.hires[split]
            m, H, W = images.shape
            padded = np.zeros((m, H + 1, W + 1), images.dtype)
            padded[:, :H, :W] = images
            cache[split] = padded.reshape(-1)
        return cache[split]

    def _render_chunk(self, idx, split, angle, dx, dy) -> np.ndarray:
        n = len(idx)
        a = np.deg2rad(angle).reshape(n, 1, 1)
        cos, sin = np.cos(a), np.sin(a)
        centre = (self.side * HIRES - 1) / 2.0
        sub = self._grid_r[:, 0]                           # _grid_r[i, j] = sub[i], _grid_c[i, j] = sub[j]
        r = sub[None, :, None] - HIRES * dy.reshape(n, 1, 1)          # [n, S, 1]
        c = sub[None, None, :] - HIRES * dx.reshape(n, 1, 1)          # [n, 1, S]
        cols = c * cos - r * sin + centre                              # [n, S, S]
        rows = c * sin + r * cos + centre
        images = self.hires[split]
        _, H, W = images.shape
        flat, Wp = self._padded(split), W + 1
        inside = (rows >= 0) & (rows <= H - 1) & (cols >= 0) & (cols <= W - 1)
        r0, c0 = np.floor(rows), np.floor(cols)
        fr = (rows - r0).astype(images.dtype)
        fc = (cols - c0).astype(images.dtype)
        ri = r0.astype(np.intp)
        np.clip(ri, 0, H - 1, out=ri)
        ci = c0.astype(np.intp)
        np.clip(ci, 0, W - 1, out=ci)
        at = ri * Wp
        at += ci
        at += (idx.astype(np.intp) * ((H + 1) * Wp)).reshape(n, 1, 1)
        gfc = 1 - fc
        top = flat.take(at)
        top *= gfc
        t = flat.take(at + 1)
        t *= fc
        top += t
        at += Wp
        bottom = flat.take(at)
        bottom *= gfc
        np.multiply(flat.take(at + 1), fc, out=t)
        bottom += t
        top *= 1 - fr
        bottom *= fr
        top += bottom
        top[~inside] = 0
        s, side = self.supersample, self.side
        if s == 2:
            v = top.reshape(n, side, 2, side, 2)
            out = v[:, :, 0, :, 0] + v[:, :, 0, :, 1]
            out += v[:, :, 1, :, 0] + v[:, :, 1, :, 1]
            out /= 4
        else:
            out = top.reshape(n, side, s, side, s).mean(axis=(2, 4))
        np.clip(out, 0.0, 1.0, out=out)
        return out.reshape(n, self.n_features)

    def draw_params(self, rng, n: int):
        """``(angle, dx, dy)`` of :meth:`sample_params`, or None when the source does not augment."""
        return self.sample_params(rng, n) if self.augmented else None

    def realise(self, idx, params, split, dtype):
        if params is None:
            return self.clean(idx, split, dtype), np.zeros((len(idx), 0))
        angle, dx, dy = params
        targets = self.targets(angle, dx, dy) if self.n_reg else np.zeros((len(idx), 0))
        return self.render(idx, split, angle, dx, dy, dtype), targets
