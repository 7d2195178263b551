from ppdet.zoo.fetch import fetch  # noqa: F401  (python -m ppdet.zoo fetch; weights= resolution)
