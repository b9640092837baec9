"""The PAULow napari plugin: segment, train or fine-tune, and view attention maps from layers.

Install with ``pip install "paulow[napari]"``; in napari the widgets are under Plugins > PAULow:

- Segment: the chosen image layer (2-D, RGB or a stack) with a saved ``.pth`` model; adds a labels
  layer (mask or instances) and, if asked, a probability layer.
- Train / fine-tune: from an image layer and a labels layer drawn on it (unlabelled pixels count as
  background; each image is cut into tiles so some can be held out for validation), with a time
  limit; the status shows each epoch's loss and validation Dice; the model is saved, never over a file.
- Attention maps: one layer per attention gate (deepest first) for the current slice.

Every job runs in a worker thread. The widgets (``widgets``: ``segment_widget``, ``train_widget`` on
``widget_base``) need napari; the layer conversions (``layers``) and the jobs (``jobs``) need only
numpy and the PAULow API. Every module here uses PAULow through ``paulow.api`` only.
"""
