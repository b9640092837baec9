"""Create the PAULow drop folders (Train_Model, Use_Model, Finetune_Model).

Run `python directory_setup.py --help` for every option. The logic lives in the `paulow` package.
"""

from paulow.cli import script_main

if __name__ == "__main__":
    script_main("setup", __file__)
