"""KerasTuner's own chief/worker mode for a sweep: which role this process has, and reaching the chief.

KerasTuner distributes a search when ``KERASTUNER_ORACLE_IP`` is set: the process whose
``KERASTUNER_TUNER_ID`` contains "chief" serves the oracle over gRPC at
``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`` and trains nothing; every other process is a worker that
asks the chief for trials, trains them and reports their metrics. The chief records every trial
(``trial_<id>/trial.json``, ``oracle.json``) and, when all are done and every worker has been told to stop,
writes the report. A worker killed mid-trial loses no finished trial; restarted with the same
``KERASTUNER_TUNER_ID`` it gets its unfinished trial back from the chief and runs it again from the start.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

import grpc  # a requirement of keras-tuner; 0.08 s to import

ID_ENV, IP_ENV, PORT_ENV = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"

#: How long a worker waits for the chief's oracle before it gives up (seconds; the sweep's --connect-timeout).
DEFAULT_CONNECT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Role:
    """This process's part in a distributed sweep."""

    tuner_id: str
    address: str  # host:port of the chief's oracle

    @property
    def is_chief(self) -> bool:
        return "chief" in self.tuner_id


def distributed_role(environ=None) -> Role | None:
    """The role set by KerasTuner's environment variables, or None for a single-process sweep.

    Raises:
        ValueError: the variables are set only in part, or the port is not an integer in 1..65535, or the
            tuner id is empty; the message names the variables and what they must hold.
    """
    env = os.environ if environ is None else environ
    present = [name for name in (ID_ENV, IP_ENV, PORT_ENV) if name in env]
    if not present:
        return None
    if IP_ENV not in env:
        raise ValueError(f"{', '.join(present)} set without {IP_ENV}: a distributed sweep needs all of {ID_ENV} "
                         f"(e.g. chief, worker0), {IP_ENV} and {PORT_ENV} (the chief's oracle address); unset them "
                         f"for a single-process sweep.")
    missing = [name for name in (ID_ENV, PORT_ENV) if not env.get(name)]
    if missing:
        raise ValueError(f"{IP_ENV} is set but {' and '.join(missing)} not: a distributed sweep needs {ID_ENV} "
                         f"(contains 'chief' for the chief, e.g. worker0 otherwise) and {PORT_ENV} (the oracle's "
                         f"port, 1..65535).")
    port = env[PORT_ENV]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{PORT_ENV} must be an integer port in 1..65535, got {port!r}.")
    if not env[IP_ENV].strip():
        raise ValueError(f"{IP_ENV} must be the chief's host name or IP address, got an empty value.")
    return Role(tuner_id=env[ID_ENV], address=f"{env[IP_ENV]}:{port}")


def oracle_exposure_warning(role: Role) -> str | None:
    """The one warning the chief prints when its oracle listens beyond this machine (None on loopback).

    KerasTuner's oracle speaks gRPC without TLS or authentication on ``KERASTUNER_ORACLE_IP``: whoever
    reaches that address and port can read and change the trials."""
    host = role.address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    where = ("every network interface of this machine" if host in ("0.0.0.0", "::")
             else f"{host}, reachable from other machines")
    return (f"warning: the sweep's oracle (KerasTuner's gRPC server) listens on {where}, port "
            f"{role.address.rsplit(':', 1)[1]}, without encryption or authentication: anyone who reaches it can "
            f"read and change the trials. Keep it on a private network or behind a firewall that admits only the "
            f"workers, or use {IP_ENV}=127.0.0.1 on every process and reach the chief through ssh tunnels "
            f"(ssh -N -L PORT:127.0.0.1:PORT chief-host on each worker machine).")


def is_worker(environ=None) -> bool:
    """Whether this process is a worker of a distributed sweep (a role is set and it is not the chief's)."""
    role = distributed_role(environ)
    return role is not None and not role.is_chief


def wait_for_chief(role: Role, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Block until the chief's oracle accepts connections (KerasTuner's own client would wait an hour).

    Raises:
        ConnectionError: the chief did not answer at ``role.address`` within ``timeout`` seconds.
    """
    channel = grpc.insecure_channel(role.address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ConnectionError(
            f"worker {role.tuner_id!r} could not reach the sweep's chief oracle at {role.address} within "
            f"{timeout:g} s. Start the chief first ({ID_ENV}=chief, same {IP_ENV} and {PORT_ENV}, same command), "
            f"check the address and that the port is open, or raise --connect-timeout.") from None
    finally:
        channel.close()
