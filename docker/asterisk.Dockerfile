# The c2c-ami test rig in a container: Debian sid's Asterisk 22 + sipp phones and trunks,
# configured by asterisk-test-config/ exactly as on a host (rig.py picks the host asterisk).
# Build context: the repository root (see docker-compose.yml).
FROM debian:sid-slim

# policy-rc.d 101: the asterisk package must not start a system-wide Asterisk.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk sip-tester python3 procps \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d

# rig.py runs the c2c_rig package next to it with the system python3: no pip install needed.
COPY asterisk-test-config /opt/c2c-rig
# Finds /usr/sbin/asterisk and sipp, writes /var/cache/c2c-ami/runtime.json.
RUN python3 /opt/c2c-rig/rig.py install --host-asterisk

# Offset 0: AMI 127.0.0.1:20038, SIP udp 127.0.0.1:20060 (host networking, see compose).
HEALTHCHECK --interval=2s --timeout=5s --retries=15 CMD ["python3", "/opt/c2c-rig/rig.py", "status"]
STOPSIGNAL SIGTERM
CMD ["python3", "/opt/c2c-rig/rig.py", "up", "--offset", "0", "--foreground"]
