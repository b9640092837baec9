"""The ranges every size, count and fraction a user (or a model file) can hand in must lie in.

One table, read by the command-line and config-file checks (`paulow.options_check`) and by the
model-file schema (`paulow.model_file`), so a value refused on the command line is refused in a
config file and in a forged model file alike. docs/input-limits.md lists them.
"""

from __future__ import annotations

MAX_PATCH = 8192  # patch / tile side in pixels: a 8192^2 float32 tile batch already needs GiBs
MAX_DEPTH = 8  # resolution levels of a U-Net (published: 4; VGG16: 5)
MAX_WIDTH = 1024  # channels of the first level (published: 64)
MAX_WIDEST = 4096  # channels of the deepest level, width * 2^(depth - 1): bounds the network's memory
MAX_CHANNELS = 1024  # image channels a network takes
MAX_CLASSES = 255  # class masks and label TIFFs are uint8 (class indices 0..254, 255 spare)
MAX_CLASS_NAME = 200  # characters per class name
MAX_PALETTE = MAX_CLASSES  # colours in a palette: one per class (a longer one made fine-tuning quadratic)
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_EPOCHS = 1_000_000
MAX_BATCH = 65536
MAX_WORKERS = 256
MAX_PER_EPOCH = 100_000_000
MAX_FOLDS = 100
MAX_MIN_SIZE = 2**31 - 1
MAX_BOUNDARY = 1000  # boundary ring width in pixels
MAX_CONTEXT = (
    16  # --context N: neighbouring sections on each side fed as channels (2N + 1 channels per image channel)
)
MAX_MINUTES = 525_600.0  # a year: --time-limit and --minutes

# Decoders (paulow.tiff_guard): a file declaring more pages, or taking longer to index, is refused.
MAX_PAGES = 10_000
INDEX_SECONDS = 10.0

# Text files (config, palette, classes.txt): size and YAML alias expansion.
MAX_TEXT_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
