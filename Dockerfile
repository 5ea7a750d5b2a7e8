# One image for every service of docker-compose.yml: the Ray head, Ray workers, the API and
# the GPU trainer differ only in their command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch==2.13.0 is pinned in pyproject.toml; TORCH_INDEX picks its build (the default CPU
# wheels; pass e.g. https://download.pytorch.org/whl/cu128 for the GPU trainer's image).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# curl: the API's health check.
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, read from pyproject.toml, in their own layer: torch and Ray take minutes
# to install and should not be reinstalled on every source change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --extra-index-url "$TORCH_INDEX" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY corpus corpus
COPY filters filters
COPY pipelines pipelines
COPY mixer mixer
COPY trainer trainer
COPY api api
COPY examples examples
# Editable, so the package keeps finding examples/ next to it (`midtrain demo` reads the
# bundled specs and sample from there); the dependencies are already in.
RUN pip install --no-deps -e .

# Not root: /work is created here owned by the service user, and Docker copies that ownership
# into the named volume the first time it is mounted.
RUN useradd --create-home --uid 1000 midtrain && mkdir -p /work && chown midtrain:midtrain /work
USER midtrain
WORKDIR /work
# The API confines request paths to the work volume and keeps job files on it.
ENV MIDTRAIN_DATA_ROOTS=/work MIDTRAIN_RUNS=/work/runs
EXPOSE 8000 6379 8265
CMD ["midtrain", "serve", "--host", "0.0.0.0", "--port", "8000"]
