# One image for every service of docker-compose.yml: the Ray head, Ray workers, the API and
# the GPU trainer differ only in their command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch==2.13.0 is pinned in pyproject.toml; TORCH_INDEX picks its build (the default CPU
# wheels; pass e.g. https://download.pytorch.org/whl/cu128 for the GPU trainer's image).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY corpus corpus
COPY filters filters
COPY pipelines pipelines
COPY mixer mixer
COPY trainer trainer
COPY api api
COPY examples examples
RUN pip install --extra-index-url "$TORCH_INDEX" .

WORKDIR /work
EXPOSE 8000 6379 8265
CMD ["midtrain", "serve", "--host", "0.0.0.0", "--port", "8000"]
