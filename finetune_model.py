"""Fine-tune a saved model on Finetune_Model/INPUT_IMAGES + INPUT_MASKS.

Run `python finetune_model.py --help` for every option. The logic lives in the `paulow` package.
"""

from paulow.cli import script_main

if __name__ == "__main__":
    script_main("finetune", __file__)
