# One image for the Dagster code location, webserver, daemon and the inference API.
# Multi-stage: build a virtualenv with CPU-only torch, then copy it into a slim runtime.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch by default; a GPU image for a training node pool: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY har_assets ./har_assets
# optional extras: docker (DockerRunLauncher, deploy/dagster.docker.yaml) or k8s (K8sRunLauncher / k8s_job_executor)
ARG HAR_EXTRAS=""
RUN pip install ".${HAR_EXTRAS:+[$HAR_EXTRAS]}"

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
