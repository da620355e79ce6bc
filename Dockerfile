# The one node image: every server, every client and the lab's tools run in it.
# Stdlib Python plus a few Debian tools; no PyPI at build time.
ARG BASE_IMAGE=testbed/base:bookworm
FROM ${BASE_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables iputils-ping netcat-openbsd tcpdump traceroute \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 # ping carries a file capability, which no-new-privileges refuses to exec; without it ping uses
 # unprivileged ICMP sockets (net.ipv4.ping_group_range, open in containers). cp drops the xattr.
 && cp /bin/ping /bin/ping.plain && mv /bin/ping.plain /bin/ping

# Servers never run as root.
RUN groupadd --gid 10001 node \
 && useradd --uid 10001 --gid node --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin node \
 && install -d -o node -g node /var/log/creosote

ENV PYTHONPATH=/opt/testbed \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/testbed
COPY common/ /opt/testbed/common/
COPY protocols/ /opt/testbed/protocols/
COPY services/ /opt/testbed/services/
COPY clients/ /opt/testbed/clients/
# The programs the lab's sidecars run (the delay line); the host-side lab/ engine stays out.
COPY tools/ /opt/testbed/tools/
# Byte-compile now: the containers run with a read-only root.
RUN python3 -m compileall -q /opt/testbed

USER node
CMD ["python3", "-m", "services", "--help"]
