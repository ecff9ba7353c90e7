"""Two processes on 127.0.0.1 under jax.distributed run one sweep; the gathered result equals one process."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxdescent import sweep
from jaxdescent.losses import sextic

# two processes and a coordinator on 127.0.0.1 (.ci/run runs it)
pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    port, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process_id, initialization_timeout=60)
    import numpy as np
    from jaxdescent.losses import sextic
    from jaxdescent import sweep
    assert jax.process_count() == 2 and jax.device_count() == 2, jax.devices()
    lr = np.logspace(-3, 0.3, 7).astype(np.float32)
    w0 = np.linspace(-2, 2, 11).astype(np.float32)
    result = sweep(sextic, w0=w0, learning_rate=lr, num_steps=200, record_every=50)
    assert result.final_w.sharding.device_set == set(jax.devices())  # both processes took part
    try:  # saving from several processes would race on one folder: refused, nothing written
        sweep(sextic, w0=w0, learning_rate=lr, num_steps=200, out=out + ".folder")
        raise AssertionError("out= was accepted with two processes")
    except ValueError as e:
        assert "several processes" in str(e), e
    import os
    assert not os.path.exists(out + ".folder")
    np.savez(out, **{k: np.asarray(v) for k, v in result._asdict().items()})
    jax.distributed.shutdown()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process: neither XLA_FLAGS nor jaxdescent's import-time
    env["JAXDESCENT_CONFIGURE_XLA"] = "0"  # configuration (which gives one CPU device per core) splits the host
    outs = [tmp_path / f"out{i}.npz" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(port), str(i), str(outs[i])], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
    try:
        logs = [p.communicate(timeout=120)[0].decode() for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)

    lr = np.logspace(-3, 0.3, 7).astype(np.float32)
    w0 = np.linspace(-2, 2, 11).astype(np.float32)
    single = sweep(sextic, w0=w0, learning_rate=lr, num_steps=200, record_every=50)
    assert np.asarray(single.diverged).any() and not np.asarray(single.diverged).all()
    for out in outs:  # every process holds the whole, identical result
        got = np.load(out)
        for field, value in single._asdict().items():
            np.testing.assert_array_equal(got[field], np.asarray(value), err_msg=field)
