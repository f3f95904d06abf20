# One image, both environments: /opt/venv (Airflow) and /opt/venv-train (TensorFlow + TF Privacy).
# Build: docker build -t securepipe .   (the GPU worker uses the same image with tensorflow[and-cuda],
# selected by the build arg TRAIN_REQUIREMENTS=requirements-train-gpu.txt when that lock exists)
FROM python:3.11-slim-bookworm
ARG TRAIN_REQUIREMENTS=requirements-train.txt
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 UV_LINK_MODE=copy \
    AIRFLOW_HOME=/opt/airflow TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""
RUN pip install --quiet uv && useradd --create-home --uid 50000 airflow
WORKDIR /opt/securepipe
COPY requirements.txt requirements-train.txt pyproject.toml README.md ./
RUN uv venv --python python3.11 /opt/venv && uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.txt \
 && uv venv --python python3.11 /opt/venv-train && uv pip install --python /opt/venv-train/bin/python --require-hashes -r ${TRAIN_REQUIREMENTS}
COPY include ./include
COPY dags ./dags
COPY plugins ./plugins
COPY policies ./policies
COPY deploy ./deploy
RUN uv pip install --python /opt/venv/bin/python --no-deps -e . \
 && uv pip install --python /opt/venv-train/bin/python --no-deps -e . \
 && mkdir -p /opt/airflow && chown -R airflow /opt/airflow
ENV PATH=/opt/venv/bin:$PATH
USER airflow
