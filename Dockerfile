# syntax=docker/dockerfile:1
# notes-qa: the API with CPU torch, the default model and an index of the shipped notes baked
# in, so a container starts in seconds without network:
#
#   docker build -t notes-qa .
#   docker run --rm -p 8000:8000 notes-qa
#
# The builder stage runs scripts/image-setup, the same script tests/test_deploy.py runs in CI.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# Torch from the official CPU wheel index: plain `torch` from PyPI is the multi-GB CUDA build.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY indexer/ indexer/
COPY service/ service/
COPY corpus/ corpus/
COPY scripts/image-setup scripts/image-setup
RUN TORCH_SPEC="$TORCH_SPEC" TORCH_INDEX_URL="$TORCH_INDEX_URL" scripts/image-setup /opt/notesqa

FROM ${PYTHON_IMAGE}
# A fixed numeric id, so Kubernetes' runAsNonRoot can verify it without a user database.
RUN groupadd --system --gid 10001 notesqa \
 && useradd --system --uid 10001 --gid notesqa --home-dir /home/notesqa --create-home \
      --shell /usr/sbin/nologin notesqa \
 && mkdir -p /var/lib/notesqa/index /var/lib/notesqa/feedback \
 && chown -R notesqa:notesqa /var/lib/notesqa
# Same path as in the builder: a venv is not relocatable. Read-only for the service user.
COPY --from=builder /opt/notesqa /opt/notesqa
# NOTESQA_INDEX_DIR is the baked index so `docker run` works with no volume; Compose and
# Kubernetes point it at /var/lib/notesqa/index. The directories under /var/lib/notesqa
# belong to the service user, so named volumes mounted there start writable for it.
ENV PATH=/opt/notesqa/venv/bin:$PATH \
    NOTESQA_CACHE_DIR=/opt/notesqa/cache \
    NOTESQA_INDEX_DIR=/opt/notesqa/index \
    NOTESQA_CORPUS='["/opt/notesqa/corpus"]' \
    NOTESQA_FEEDBACK_DB=/var/lib/notesqa/feedback/feedback.sqlite3 \
    NOTESQA_HOST=0.0.0.0 \
    NOTESQA_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/notesqa
EXPOSE 8000
# /healthz: the process answers. Readiness (/readyz, index loaded) is the orchestrator's call.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NOTESQA_PORT', '8000'), timeout=4)"]
# --no-build: never index at start (a missing index means /readyz answers 503 until one is
# published, then it is loaded); the baked index is there for a plain `docker run`.
CMD ["notesqa", "serve", "--no-build"]
