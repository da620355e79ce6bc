#!/bin/sh
# healthcheck.sh SERVICE: the container health check, one real protocol exchange with
# netcat (UDP included: a datagram must come back). The same checks as
# `python3 -m clients.probe`, at a tenth of its cost: Docker runs this every second
# in every container, where a Python start-up each time would cost ~15 % of two cores.
set -eu
service=${1:?usage: healthcheck.sh SERVICE}
tcp_line() {  # tcp_line PORT INPUT PATTERN: send INPUT, half-close, expect PATTERN in the reply
  printf "$2" | nc -N -w 2 127.0.0.1 "$1" | grep -q -- "$3"
}
udp_reply() {  # udp_reply PORT INPUT PATTERN: one datagram out, one back matching PATTERN
  printf "$2" | nc -u -W 1 -w 2 127.0.0.1 "$1" | grep -q -- "$3"
}
case "$service" in
  daytime) tcp_line 13 '' '-UTC' && udp_reply 13 '\n' '-UTC' ;;
  echo) tcp_line 7 'probe\n' '^probe$' && udp_reply 7 'probe' '^probe$' ;;
  creosote) udp_reply 7739 '\000creosote:ping' '^creosote:pong records=' ;;
  chat) tcp_line 5000 '' '^Welcome' ;;
  doctor) tcp_line 5001 '' '^Good day' ;;
  threaded) tcp_line 9000 'probe\n' '] PROBE$' ;;
  iterative) tcp_line 9001 'probe\n' '] PROBE$' ;;
  forking) tcp_line 9002 'probe\n' '] PROBE$' ;;
  selectors) tcp_line 9003 'probe\n' '] PROBE$' ;;
  asyncio) tcp_line 9004 'probe\n' '] PROBE$' ;;
  *) echo "healthcheck.sh: unknown service '$service'" >&2; exit 2 ;;
esac
