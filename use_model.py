"""Segment Use_Model/INPUT_IMAGES with a saved model; masks go to Use_Model/OUTPUT_MASKS.

Run `python use_model.py --help` for every option. The logic lives in the `paulow` package.
"""

from paulow.cli import script_main

if __name__ == "__main__":
    script_main("predict", __file__)
