#!/bin/sh
# healthcheck.sh PROTOCOL PORT[/tcp|/udp]...: the container health check of a server on 127.0.0.1.
#
#   healthcheck.sh echo 7/tcp 7/udp      healthcheck.sh upper 9000/tcp      healthcheck.sh tcp 8080/tcp
#
# PROTOCOL is one of protocols/registry.py's PROTOCOLS (daytime echo upper chat doctor creosote): one real
# exchange in it on every port, with netcat, UDP included (a datagram must come back). Or it is tcp or udp,
# for a server that speaks none of them: tcp, the port accepts a connection; udp, datagrams to the port get
# no ICMP port unreachable within a second. A bare port number is TCP.
#
# The same checks as `python3 -m clients.probe`, at a tenth of its cost: Docker runs this every second in
# every container, where a Python start-up each time would cost ~15 % of two cores. It exits 0 when every
# port answers, 1 naming the first that does not, 2 when its arguments are wrong.
set -eu

usage() {
  echo "healthcheck.sh: $1" >&2
  echo "usage: healthcheck.sh PROTOCOL PORT[/tcp|/udp]... (PROTOCOL: daytime echo upper chat doctor creosote, or tcp or udp)" >&2
  exit 2
}

[ "$#" -ge 2 ] || usage "give a protocol and at least one port"
protocol=$1
shift
case "$protocol" in
  daytime | echo | upper | chat | doctor | creosote | tcp | udp) ;;
  *) usage "unknown protocol '$protocol'" ;;
esac

split() { # split SPEC: its number and transport (a bare number is TCP), or exit 2 saying what is wrong
  case "$1" in
    */*) number=${1%%/*} transport=${1#*/} ;;
    *) number=$1 transport=tcp ;;
  esac
  case "$number" in
    '' | *[!0-9]*) usage "'$1' is not a port: write NUMBER, NUMBER/tcp or NUMBER/udp, like 7/udp" ;;
  esac
  if [ "${#number}" -gt 5 ] || [ "$number" -lt 1 ] || [ "$number" -gt 65535 ]; then
    usage "'$1': ports run from 1 to 65535"
  fi
  case "$transport" in
    tcp | udp) ;;
    *) usage "'$1' is not a port: its transport is tcp or udp, like 7/udp" ;;
  esac
}

# Every argument is checked before anything is sent, and whether the protocol has a check over each port.
for spec in "$@"; do
  split "$spec"
  case "$protocol/$transport" in
    daytime/tcp | daytime/udp | echo/tcp | echo/udp | upper/tcp | chat/tcp | doctor/tcp | creosote/udp) ;;
    tcp/tcp | udp/udp) ;;
    *) usage "$protocol has no check over $transport ('$spec')" ;;
  esac
done

tcp_line() { # tcp_line PORT INPUT PATTERN: send INPUT (a printf format of this script), half-close, expect PATTERN
  printf "$2" | nc -N -w 2 127.0.0.1 "$1" | grep -q -- "$3"
}
udp_reply() { # udp_reply PORT INPUT PATTERN: one datagram out, one back matching PATTERN
  printf "$2" | nc -u -W 1 -w 2 127.0.0.1 "$1" | grep -q -- "$3"
}
check() { # check PORT TRANSPORT
  case "$protocol/$2" in
    daytime/tcp) tcp_line "$1" '' '-UTC' ;;
    daytime/udp) udp_reply "$1" '\n' '-UTC' ;;
    echo/tcp) tcp_line "$1" 'probe\n' '^probe$' ;;
    echo/udp) udp_reply "$1" 'probe' '^probe$' ;;
    upper/tcp) tcp_line "$1" 'probe\n' '] PROBE$' ;;
    chat/tcp) tcp_line "$1" '' '^Welcome to my chat room!' ;;
    doctor/tcp) tcp_line "$1" '' '^Good day\.' ;;
    creosote/udp) udp_reply "$1" '\000creosote:ping' '^creosote:pong records=' ;;
    tcp/tcp) nc -z -w 2 127.0.0.1 "$1" ;;
    # -v: without it netcat-openbsd does not report the ICMP port unreachable (it still exits 0).
    udp/udp) nc -v -u -z -w 1 127.0.0.1 "$1" 2>/dev/null ;;
  esac
}

for spec in "$@"; do
  split "$spec"
  if ! check "$number" "$transport"; then
    echo "healthcheck.sh: $protocol on $number/$transport did not answer" >&2
    exit 1
  fi
done
