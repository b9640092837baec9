"""The PAULow napari plugin: segment, train or fine-tune, and view attention maps from layers.

The widgets (``paulow.napari.widgets``) need napari (``pip install "paulow[napari]"``); the layer
conversions (``layers``) and the background jobs (``jobs``) need only numpy and the PAULow API.
"""
