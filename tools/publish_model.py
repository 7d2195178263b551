"""Publish a trained model as <name>.tar.gz (weights, resolved config, label list, metadata)
and add it to the model zoo index (ppdet/zoo/models.yml) and MODEL_ZOO.md.

    python tools/publish_model.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml \
        -o weights=output/yolov3_mobilenet_v1_demo/model_final --output_dir dist \
        --url_base https://example.org/models

Same as ``python -m ppdet.zoo publish``; see ``--help`` for every option.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet.engine.cpu_math import configure_cpu_math

if __name__ == "__main__":
    configure_cpu_math()  # before anything imports Paddle
    from ppdet.zoo.__main__ import main

    sys.exit(main(["publish", *sys.argv[1:]]))
