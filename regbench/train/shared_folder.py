"""Data parallel over several machines: every rank must see the run folder that rank 0 alone writes."""
from __future__ import annotations

import secrets
import socket
from pathlib import Path

import paddle

from regbench.errors import UserError
from regbench.atomic_files import atomic_write


def require_shared_folder(folder: Path) -> None:
    """A UserError on every rank unless each of them sees a file rank 0 has just written in `folder`.

    Every rank reads rank 0's checkpoints (to resume, to score the best one): on a folder that is not shared, the
    other ranks would find none and train or evaluate other weights than rank 0, or wait for it forever."""
    rank, world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    token = paddle.to_tensor([secrets.randbits(62) if rank == 0 else 0], dtype="int64")
    if rank == 0:
        with atomic_write(_probe(folder, token)) as f:
            f.write(socket.gethostname())
    paddle.distributed.broadcast(token, src=0)  # sent after rank 0's write: the others look only then
    probe = _probe(folder, token)
    blind = paddle.to_tensor([int(r == rank and not probe.exists()) for r in range(world)], dtype="int32")
    paddle.distributed.all_reduce(blind)  # every rank learns who does not see it, so that all stop together
    if rank == 0:
        probe.unlink()
    missing = [r for r, b in enumerate(blind.tolist()) if b]
    if missing:
        raise UserError(f"data parallel: rank(s) {', '.join(map(str, missing))} do not see the run folder {folder} "
                        f"that rank 0 writes (this is rank {rank} on {socket.gethostname()}): on several machines "
                        "hydra.run.dir must be on a filesystem every node mounts at the same path (NFS, Lustre, ...)")


def _probe(folder: Path, token: paddle.Tensor) -> Path:
    return folder / f".shared-{int(token.item())}"  # a new name each run: no cached lookup can answer for it
