"""Train a model on Train_Model/TRAINING_IMAGES + TRAINING_MASKS; saves it to Use_Model/saved_models.

Run `python train_model.py --help` for every option. The logic lives in the `paulow` package.
"""

from paulow.cli import script_main

if __name__ == "__main__":
    script_main("train", __file__)
