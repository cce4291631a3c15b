# One image for the Dagster code location, webserver, daemon and the inference API (the default target, last below).
# Multi-stage: build a virtualenv with CPU-only torch, then copy it into a slim runtime.
# `--target api`: the inference API alone (`har serve`), installed as ".[serve]": no torch, onnx or dagster.
#
# BASE_IMAGE: any Debian-like image with Python 3.11 (python3, python3-venv); python:3.11-slim from the registry by
# default. Without a registry, scripts/images.sh makes one with debootstrap (Debian 12 ships Python 3.11).
# requirements/wheels/: when the build context has it (scripts/images.sh fills it from the lock, CPU torch
# included), every package comes from there and no index is asked; otherwise torch comes from TORCH_INDEX_URL and
# everything else from the package registry.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch by default; a GPU image for a training node pool: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements/ /src/requirements/
# every version from the lock (scripts/lock.sh); the dependencies in their own layer, so a code change rebuilds
# only the project's
RUN if [ -d /src/requirements/wheels ]; then \
      pip install --no-index --find-links /src/requirements/wheels /src/requirements/wheels/*.whl \
        -c /src/requirements/lock-linux-x86_64-cp311.txt; \
    else \
      pip install "torch==2.13.0" --no-deps --index-url "$TORCH_INDEX_URL" -c /src/requirements/lock-linux-x86_64-cp311.txt; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY har_assets ./har_assets
# optional extras: s3 (assets and MLflow artifacts on an object store), docker (DockerRunLauncher,
# deploy/dagster.docker.yaml) or k8s (K8sRunLauncher / k8s_job_executor), comma-separated
ARG HAR_EXTRAS=""
RUN offline=""; [ -d requirements/wheels ] && offline="--no-index --find-links requirements/wheels --no-build-isolation"; \
    pip install $offline ".[platform${HAR_EXTRAS:+,$HAR_EXTRAS}]" -c requirements/lock-linux-x86_64-cp311.txt

FROM ${BASE_IMAGE} AS api-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/ requirements/
COPY pyproject.toml README.md ./
COPY har_assets ./har_assets
RUN offline=""; [ -d requirements/wheels ] && offline="--no-index --find-links requirements/wheels --no-build-isolation"; \
    pip install $offline ".[serve]" -c requirements/lock-linux-x86_64-cp311.txt

# The API's image: it serves models registered with their ONNX graph (every model trained since graphs are
# exported at registration) on ONNX Runtime; configure it as the full image's `har serve` (MLFLOW_TRACKING_URI,
# HAR_API_KEY, ...: docs/serving.md).
FROM ${BASE_IMAGE} AS api
RUN useradd --create-home --uid 1000 har
COPY --from=api-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HAR_HOME=/har
USER har
EXPOSE 8000
# refuses to start on an example's placeholder secret (har_assets/placeholder_secrets.py)
ENTRYPOINT ["python", "-m", "har_assets.placeholder_secrets"]
CMD ["har", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM ${BASE_IMAGE}
RUN useradd --create-home --uid 1000 har
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HAR_HOME=/har DAGSTER_HOME=/opt/dagster/dagster_home
COPY dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/app/workspace.yaml
# Mount points owned by the runtime user: a named volume mounted here starts with this ownership. Every stateful
# path is one: Optuna's studies, Dagster's compute logs ($DAGSTER_HOME/storage), the assets and MLflow's files.
RUN mkdir -p /har/raw /har/assets /har/optuna /mlflow-artifacts /mlflow-auth /opt/dagster/dagster_home/storage \
    && chown -R har:har /har /mlflow-artifacts /mlflow-auth /opt/dagster/dagster_home
WORKDIR /opt/dagster/app
USER har
ENTRYPOINT ["python", "-m", "har_assets.placeholder_secrets"]
