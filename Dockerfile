# One image for the Dagster code location, webserver, daemon and the inference API (the default target, last below).
# Multi-stage: build a virtualenv with CPU-only torch, then copy it into a slim runtime.
# `--target api`: the inference API alone (`har serve`), installed as ".[serve]": no torch, onnx or dagster.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch by default; a GPU image for a training node pool: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# every version from the lock (scripts/lock.sh); torch alone from its index, its dependencies from the registry below
COPY requirements/lock-linux-x86_64-cp311.txt /src/requirements/
RUN pip install "torch==2.13.0" --no-deps --index-url "$TORCH_INDEX_URL" -c /src/requirements/lock-linux-x86_64-cp311.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY har_assets ./har_assets
# optional extras: docker (DockerRunLauncher, deploy/dagster.docker.yaml) or k8s (K8sRunLauncher / k8s_job_executor)
ARG HAR_EXTRAS=""
RUN pip install ".[platform${HAR_EXTRAS:+,$HAR_EXTRAS}]" -c requirements/lock-linux-x86_64-cp311.txt

FROM python:3.11-slim AS api-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/lock-linux-x86_64-cp311.txt requirements/
COPY pyproject.toml README.md ./
COPY har_assets ./har_assets
RUN pip install ".[serve]" -c requirements/lock-linux-x86_64-cp311.txt

# The API's image: it serves models registered with their ONNX graph (every model trained since graphs are
# exported at registration) on ONNX Runtime; configure it as the full image's `har serve` (MLFLOW_TRACKING_URI,
# HAR_API_KEY, ...: docs/serving.md).
FROM python:3.11-slim AS api
RUN useradd --create-home --uid 1000 har
COPY --from=api-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HAR_HOME=/har
USER har
EXPOSE 8000
CMD ["har", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 har
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HAR_HOME=/har DAGSTER_HOME=/opt/dagster/dagster_home
COPY dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/app/workspace.yaml
# Mount points owned by the runtime user: a named volume mounted here starts with this ownership,
# and Dagster writes compute logs under $DAGSTER_HOME/storage.
RUN mkdir -p /har/raw /har/assets /har/optuna /mlflow-artifacts /opt/dagster/dagster_home/storage \
    && chown -R har:har /har /mlflow-artifacts /opt/dagster/dagster_home
WORKDIR /opt/dagster/app
USER har
