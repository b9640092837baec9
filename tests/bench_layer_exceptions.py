"""The benches that measure an internal component, and the package modules each may import.

A bench that measures the user's path goes through `paulow.api` (or `import paulow` for its top-level
names) and is not listed here. Any bench may import `paulow`, `paulow.api`, `paulow.errors`,
`paulow.workspace` and `paulow.prompts`; a listed one also the modules in its tuple: an imported name
(as `tests/test_layers.py`'s `imported` reads it) is allowed when it equals a listed module or starts
with it and a dot. The reason for each exception is the comment above it.
`bench/threads_under_load.py` is not listed: it imports `paulow.config` and `paulow.training.planning`
only inside the probe source it runs in a subprocess (a string, invisible to `ast`), to time training
steps per OpenMP wait policy, an internal measurement.
"""

from __future__ import annotations

BENCH_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    # the chunked engine's memory: `choose_wait_policy` must run before torch loads, as the CLI does
    "bench/chunked_memory.py": ("paulow.device",),
    # the seeded watershed across chunk seams: the chunk grid and per-chunk labelling themselves
    "bench/chunked_watershed.py": ("paulow.boundaries", "paulow.chunk_watershed", "paulow.chunking"),
    # the benches' data loader: `Slice` records binarised and normalised exactly as training does
    "bench/datasets.py": ("paulow.mask_classes", "paulow.normalisation", "paulow.slices"),
    # A/B of the inference engine (old vs new tiling, the device probe) on a bare network
    "bench/engine_ab.py": ("paulow.device_probe", "paulow.infer", "paulow.io", "paulow.models"),
    # the bioimage.io package against the toolkit: the package's own tiling and post-processing
    "bench/export_reproduce.py": ("paulow.attachment_postprocess", "paulow.bioimageio_package"),
    # fine-tuning variants: the fine-tuning config, the fold loop and network building they vary
    "bench/finetune_domains.py": (
        "paulow.config",
        "paulow.finetuning",
        "paulow.io",
        "paulow.report",
        "paulow.slices",
        "paulow.splits",
        "paulow.training.loop",
        "paulow.training.network",
    ),
    # device throughput: an untrained model file of each width (no training) for `use_model.py`;
    # the drop folders through `Workspace` as the scripts lay them out
    "bench/gpu.py": ("paulow.checkpoint", "paulow.config", "paulow.models", "paulow.normalisation"),
    # network and tiling speed, FLOPs: the inference primitives and the FLOP counter
    "bench/infer_speed.py": (
        "paulow.infer",
        "paulow.inference_networks",
        "paulow.models",
        "paulow.models.flops",
        "paulow.normalisation",
        "paulow.postprocess",
    ),
    # the machine line under every number: the CPU's model name
    "bench/machine.py": ("paulow.device",),
    # ablation of a boundary model's object-mask rule: the rules themselves (threshold, argmax, size)
    "bench/object_threshold.py": ("paulow.boundaries", "paulow.object_size", "paulow.postprocess"),
    # ONNX Runtime against torch on the same tiling: the runtime switch and the prediction path
    "bench/ort_speed.py": ("paulow.boundaries", "paulow.infer", "paulow.ort_runtime", "paulow.predict"),
    # training recipes compared by cross-validation: the training internals each row changes
    "bench/quality.py": (
        "paulow.config",
        "paulow.infer",
        "paulow.io",
        "paulow.metrics",
        "paulow.postprocess",
        "paulow.report",
        "paulow.slices",
        "paulow.training.cross_validation",
        "paulow.training.network",
    ),
    # the automatic boundary-target rule (interior share) on masks as `Slice` records
    "bench/target_choice.py": ("paulow.boundaries", "paulow.slices"),
    # the training data path: patch datasets, device batches, the loader and between-epoch validation
    "bench/train_data_path.py": (
        "paulow.augmentation",
        "paulow.config",
        "paulow.device_batches",
        "paulow.device_validation",
        "paulow.infer",
        "paulow.models",
        "paulow.normalisation",
        "paulow.patches",
        "paulow.slices",
        "paulow.training.epoch",
        "paulow.training.evaluation",
    ),
    # training-step speed and FLOPs of the networks and losses alone
    "bench/train_speed.py": ("paulow.losses", "paulow.models", "paulow.models.flops"),
}
