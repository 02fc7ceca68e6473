"""The VM's addresses and default route (``ip -j``), and what they say about its
network mode: VirtualBox NAT, NAT Network, host-only, VMware NAT or bridged."""

from __future__ import annotations

import contextlib
import ipaddress
import json

from classcord.doctor.commands import run_command
from classcord.doctor.facts import Interface, IPv4, Mode, NetworkFacts

VBOX_NAT_NET = ipaddress.IPv4Network("10.0.2.0/24")
VBOX_NAT_GATEWAY = ipaddress.IPv4Address("10.0.2.2")
VBOX_NATNETWORK_GATEWAY = ipaddress.IPv4Address("10.0.2.1")
VBOX_HOST_ONLY_NET = ipaddress.IPv4Network("192.168.56.0/24")


def parse_ip_addr_json(text: str) -> list[Interface]:
    interfaces = []
    for item in json.loads(text or "[]"):
        addresses = []
        for info in item.get("addr_info") or []:
            if info.get("family") == "inet":
                with contextlib.suppress(ValueError, KeyError):
                    addresses.append(
                        ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")
                    )
        interfaces.append(Interface(str(item.get("ifname", "?")), tuple(addresses)))
    return interfaces


def gather_network() -> NetworkFacts:
    code, out = run_command(["ip", "-j", "-4", "addr", "show"])
    if code != 0:
        return NetworkFacts((), error="cannot run 'ip -j addr' (iproute2 missing?)")
    try:
        interfaces = parse_ip_addr_json(out)
    except ValueError as exc:
        return NetworkFacts((), error=f"cannot read 'ip -j addr': {exc}")
    gateway: IPv4 | None = None
    gateway_interface = ""
    code, out = run_command(["ip", "-j", "-4", "route", "show", "default"])
    if code == 0:
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            routes = json.loads(out or "[]")
            if routes:
                gateway = ipaddress.IPv4Address(routes[0]["gateway"])
                gateway_interface = str(routes[0].get("dev", ""))
    return NetworkFacts(tuple(interfaces), gateway, gateway_interface)


def detect_mode(network: NetworkFacts, lan: ipaddress.IPv4Network) -> tuple[Mode, IPv4 | None]:
    """The VM's network mode and its main address, from its addresses and gateway."""
    candidates = [a for i in network.outside_interfaces() for a in i.addresses]
    if not candidates:
        return Mode.NONE, None
    # Prefer the address on the default route's interface.
    main = candidates[0]
    for interface in network.outside_interfaces():
        if interface.name == network.gateway_interface and interface.addresses:
            main = interface.addresses[0]
    for address in candidates:
        if address.ip in lan:
            return Mode.BRIDGED, address.ip
    if main.ip in VBOX_NAT_NET:
        if network.gateway == VBOX_NATNETWORK_GATEWAY:
            return Mode.VBOX_NATNETWORK, main.ip
        return Mode.VBOX_NAT, main.ip
    if main.ip in VBOX_HOST_ONLY_NET:
        return Mode.VBOX_HOST_ONLY, main.ip
    gateway = network.gateway
    if (
        gateway is not None
        and gateway in main.network
        and int(gateway) & 0xFF == 2
        and main.ip in ipaddress.IPv4Network("192.168.0.0/16")
    ):
        return Mode.VMWARE_NAT, main.ip
    return Mode.OTHER, main.ip
