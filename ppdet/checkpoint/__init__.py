"""Low-level checkpoint handling, shared by the engine and the zoo (it imports neither).

- ``safe_pickle``: read ``.pdparams`` / ``.pdopt`` pickles with a restricted unpickler that
  builds only arrays and plain values (a file from the internet cannot run code);
- ``files``: find a checkpoint (path or PaddleDetection prefix), read ``.pdparams`` /
  ``.safetensors`` / a published folder as ``{name: array}``, write safetensors atomically,
  judge a file by its header;
- ``match`` / ``lenient``: copy a state dict into a model strictly (exact names: eval, infer,
  resume) or leniently (PaddleDetection's suffix rule: fine-tuning), with one ``LoadReport``;
- ``report``: ``LoadReport`` and ``WeightsError`` (one-line errors naming the file).

Resolving zoo names and URLs, and converting legacy v0.1 checkpoints, sit above this package
(``ppdet.zoo.weights.load_weights``).
"""

from ppdet.checkpoint.files import (
    checkpoint_header_problem,
    read_safetensors,
    read_state_dict,
    weights_file,
    write_safetensors,
)
from ppdet.checkpoint.lenient import describe_resnet, fit_state_dict, match_names
from ppdet.checkpoint.match import exact_match, load_state_dict
from ppdet.checkpoint.report import LoadReport, WeightsError
from ppdet.checkpoint.safe_pickle import UnsafeCheckpointError, safe_load, tensors_as_arrays

__all__ = [
    "LoadReport",
    "UnsafeCheckpointError",
    "WeightsError",
    "checkpoint_header_problem",
    "describe_resnet",
    "exact_match",
    "fit_state_dict",
    "load_state_dict",
    "match_names",
    "read_safetensors",
    "read_state_dict",
    "safe_load",
    "tensors_as_arrays",
    "weights_file",
    "write_safetensors",
]
