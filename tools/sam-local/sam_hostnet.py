# From the SAM CLI host-network recipe of this machine kind's toolchain notes (verified offline with aws-sam-cli 1.170.0, the version
# requirements-dev.txt pins). It patches SAM internals: re-check it when that pin changes.
"""Run AWS SAM CLI with a real host-network mode for Lambda containers.

SAM CLI 1.170.0 treats `--docker-network host` only as "do not connect to a
network" (container.py: `if self.network_id and self.network_id != "host"`),
so the container keeps Docker's default (bridge) network.  This wrapper makes
`--docker-network host` mean network_mode=host, and — because every emulator
would otherwise bind 0.0.0.0:8080 and 127.0.0.1:9001 in the one shared
namespace — gives each container's RIE its own loopback ports:
  --runtime-interface-emulator-address 127.0.0.1:<SAM's chosen rapid_port_host>
  --runtime-api-address                127.0.0.1:<free port 9100-9999>
It also stops SAM's own off-host calls (loopback-only policy):
  * STS GetCallerIdentity for AWS::AccountId (botocore then probes the EC2
    metadata service 169.254.169.254 when no credentials are configured),
  * the weekly PyPI "newer version" check (https://pypi.org).
Usage: venv/bin/python sam_hostnet.py <normal sam arguments>
SAM_HOSTNET=0 keeps SAM's stock container networking (negative control) but
still suppresses the off-host calls.
"""
import logging
import os
import re
import sys
import threading

from docker.models.containers import ContainerCollection
from samcli.local.docker import container as _sam_container
from samcli.local.docker.utils import find_free_port

LOG = logging.getLogger("samcli.sam_hostnet")
_tl = threading.local()
_orig_collection_create = ContainerCollection.create
_orig_container_create = _sam_container.Container.create


def _collection_create(self, image, command=None, **kwargs):
    sam_ctr = getattr(_tl, "sam_ctr", None)
    if sam_ctr is not None:
        kwargs.pop("ports", None)  # docker-py refuses port_bindings with network_mode=host
        kwargs["network_mode"] = "host"
        entry = list(kwargs.get("entrypoint") or [])
        if entry and entry[0].endswith("aws-lambda-rie"):
            api_port = find_free_port("127.0.0.1", start=9100, end=9999)
            entry[1:1] = [
                "--runtime-interface-emulator-address", f"127.0.0.1:{sam_ctr.rapid_port_host}",
                "--runtime-api-address", f"127.0.0.1:{api_port}",
            ]
            kwargs["entrypoint"] = entry
            LOG.info("host network: RIE on 127.0.0.1:%s, Runtime API on 127.0.0.1:%s",
                     sam_ctr.rapid_port_host, api_port)
        else:
            LOG.warning("host network: entrypoint %r is not the RIE; ports left at defaults", entry)
    return _orig_collection_create(self, image, command, **kwargs)


def _container_create(self, context):
    if self.network_id != "host" or os.environ.get("SAM_HOSTNET", "1") == "0":
        return _orig_container_create(self, context)
    _tl.sam_ctr = self
    try:
        return _orig_container_create(self, context)
    finally:
        _tl.sam_ctr = None


ContainerCollection.create = _collection_create
_sam_container.Container.create = _container_create

# --- no traffic off loopback from SAM itself ---------------------------------
os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
from samcli.commands.local.cli_common.invoke_context import InvokeContext  # noqa: E402
from samcli.lib.utils import version_checker  # noqa: E402

InvokeContext._add_account_id_to_global = lambda self: None  # keep default AWS::AccountId
version_checker.fetch_and_compare_versions = lambda: None

if __name__ == "__main__":
    from samcli import __version__ as _sam_version
    from samcli.cli.main import cli

    if _sam_version != "1.170.0":
        LOG.warning("sam_hostnet.py was verified with SAM 1.170.0, not %s", _sam_version)

    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(cli())
