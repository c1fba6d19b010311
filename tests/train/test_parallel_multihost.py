"""Two processes on localhost (JAX's distributed runtime, gloo collectives, 2 CPU devices
each) train to the same parameters as one process with the same global batch."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp

from jaxconv.workdir.checkpoint import read_state

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGS = [
    "--config",
    "experiments/lenet5_mnist.py",
    "--config.batch_size=16",
    "--config.eval_batch_size=200",
    "--config.report=False",
    "--config.num_train_steps=20",
    "--config.checkpoint_every_steps=10",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def start(workdir, devices, *extra):
    devices_flag = f"--xla_force_host_platform_device_count={devices}"
    flags = f"{os.environ['XLA_FLAGS_WITHOUT_DEVICES']} {devices_flag}"
    env = dict(os.environ, XLA_FLAGS=flags)
    return subprocess.Popen(
        [sys.executable, "launch.py", *ARGS, "--workdir", str(workdir), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process, timeout=300):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def params(workdir):
    state = read_state(workdir, 20)
    return ocp.tree.to_flat_dict(state["params"])


def test_two_processes_match_one(tmp_path):
    address = f"localhost:{free_port()}"
    processes = [
        start(
            tmp_path / "two",
            2,
            f"--config.parallel.coordinator_address={address}",
            "--config.parallel.num_processes=2",
            f"--config.parallel.process_id={i}",
        )
        for i in range(2)
    ]
    try:
        outputs = [finish(p) for p in processes]
    finally:  # one stuck process must not leave the other running
        for process in processes:
            process.kill()
    finish(start(tmp_path / "one", 1))

    assert "Summary:" in outputs[0] and "Summary:" not in outputs[1]  # process 0 speaks
    two, one = params(tmp_path / "two"), params(tmp_path / "one")
    assert two.keys() == one.keys()
    for key in one:
        np.testing.assert_allclose(
            np.asarray(two[key]), np.asarray(one[key]), atol=1e-5, err_msg=str(key)
        )
