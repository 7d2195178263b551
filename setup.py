"""ppdet: object detection toolkit and model zoo on PaddlePaddle 3.x."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name: str) -> list[str]:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    return [line for line in lines if line and not line.startswith("-r")]


setup(
    name="ppdet",
    version="0.1.0",
    description="Object detection toolkit and model zoo on PaddlePaddle 3.x",
    packages=find_packages(include=["ppdet", "ppdet.*"]),
    python_requires=">=3.9",
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
)
