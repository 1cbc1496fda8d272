# Two images from one file:
#   service   the teacher service only (no torch, no Ray): autocurriculum serve
#   students  CPU torch, Ray, MiniGrid: Ray head and worker nodes, autocurriculum train
# docker-compose.yml builds both; `docker build --target service .` builds one.
# The base image is a build argument so that a mirror or a local stand-in can replace it.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv \
    && pip install "setuptools>=77" wheel \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin autocurriculum
COPY docker/healthcheck.py /usr/local/bin/healthcheck.py

# ----------------------------------------------------------------- the package, built once
FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api_schemas api_schemas/
COPY env_generators env_generators/
COPY teacher_service teacher_service/
COPY student_workers student_workers/
# The wheel, and each image's dependencies read from pyproject.toml: the images install
# those first, in a layer that only changes when the dependencies do.
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /dist . \
    && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extra = p['optional-dependencies']; \
open('/dist/service.txt', 'w').write('\n'.join(p['dependencies'] + extra['postgres'])); \
open('/dist/students.txt', 'w').write('\n'.join(p['dependencies'] + extra['students']))"

# ------------------------------------------------------------------------------ service
FROM base AS service
COPY --from=build /dist/service.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-deps /tmp/*.whl && rm /tmp/*.whl
USER autocurriculum
WORKDIR /home/autocurriculum
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python3", "/usr/local/bin/healthcheck.py", "http", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["autocurriculum"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# ----------------------------------------------------------------------------- students
FROM base AS students
# CPU torch, pinned as in the Makefile, from PyTorch's CPU index (a plain PyPI torch pulls
# gigabytes of CUDA packages). Wheels put in docker/wheels/ are preferred (offline builds).
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY docker/wheels/ /tmp/wheels/
RUN pip install --find-links /tmp/wheels --index-url "${TORCH_INDEX_URL}" \
        --extra-index-url https://pypi.org/simple "${TORCH}" \
    && rm -rf /tmp/wheels
COPY --from=build /dist/students.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-deps /tmp/*.whl && rm /tmp/*.whl
ENV RAY_USAGE_STATS_ENABLED=0
# owned by the user, so that a volume mounted here (compose: checkpoints) is writable
RUN mkdir -p /home/autocurriculum/checkpoints \
    && chown autocurriculum:autocurriculum /home/autocurriculum/checkpoints
USER autocurriculum
WORKDIR /home/autocurriculum
CMD ["autocurriculum", "--help"]
