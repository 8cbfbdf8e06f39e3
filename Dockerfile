# The workflow's pinned environment (requirements.txt, Python as envs/cxr14.yaml) with the cxr14
# package, for Snakemake's `--sdm apptainer` (config key `container`) and for Docker itself.
# The project's tree, .git included, is copied in and installed editable: provenance records in
# the image name the commit it was built from. docs/cluster.md#a-container-image has the commands.
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/cxr14
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
    && git config --system --add safe.directory /opt/cxr14
