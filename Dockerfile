# One image for the four services (auth, mfa, session, portal) and ssoctl. The Kubernetes
# manifests (deploy/k8s) choose what a container runs, e.g.
#   uvicorn services.auth.app:create_app --factory --host=0.0.0.0 --port=8101
# Build: docker build -t registry.example.com/customer-portal-sso:0.1.0 .
# The base is pinned to an exact Python release; pin its digest too where your registry allows.

# Stage 1: install the project and its dependencies into a virtualenv (wheels; no compiler needed).
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/sso
WORKDIR /src
COPY pyproject.toml ./
COPY services ./services
COPY devstack ./devstack
# The French catalogue is compiled from its .po source first, so `pip install .` packages the .mo.
RUN /opt/sso/bin/pip install 'babel>=2.14' \
    && /opt/sso/bin/pybabel compile --domain messages --directory services/common/locale \
    && /opt/sso/bin/pip install . \
    && /opt/sso/bin/python -m compileall -q /opt/sso/lib

# Stage 2: the runtime. The same slim base, the virtualenv and nothing else: no compiler, no
# pip cache, no source tree, no secret. Runs as a numeric non-root user, so Kubernetes can
# check runAsNonRoot; the root filesystem can be read-only (no bytecode is written).
FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/sso/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 sso \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sso
COPY --from=build /opt/sso /opt/sso
WORKDIR /tmp
USER 10001:10001
EXPOSE 8101 8102 8103 8104
CMD ["ssoctl", "--help"]
