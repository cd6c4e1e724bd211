# The c2c-ami gateway.  Build context: the repository root (see docker-compose.yml).
FROM python:3.12-slim

WORKDIR /src
# README.md* (a glob): copied when it exists (setup.cfg reads it), no error when not.
COPY pyproject.toml setup.cfg constraints.txt LICENSE README.md* ./
COPY c2c_ami ./c2c_ami
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /src/build

COPY docker/c2c-ami.rig.yaml /etc/c2c-ami/c2c-ami.yaml
WORKDIR /
CMD ["c2c-ami", "--config", "/etc/c2c-ami/c2c-ami.yaml"]
