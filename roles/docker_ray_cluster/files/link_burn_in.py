# Link burn-in across the members of one replica, run by every member at once in a short-lived container of the
# replica's image (which has torch): torch.distributed with gloo (no GPUs) or NCCL (GPUs), rank 0 on the leader.
# Each ordered pair of members in turn sends BURN_IN_MIB MiB one way (the receiver acknowledges), then the whole
# group all-reduces the same buffer. Rank 0 prints one line "BURN_IN_RESULT <json>". Settings come from BURN_IN_*.
import datetime
import json
import os
import time

import torch
import torch.distributed as dist

RANK = int(os.environ["BURN_IN_RANK"])
NAMES = os.environ["BURN_IN_NAMES"].split(",")
WORLD = len(NAMES)
BACKEND = os.environ["BURN_IN_BACKEND"]
NBYTES = int(os.environ["BURN_IN_MIB"]) * 1024 * 1024
ROUNDS = 3


def sync():
    if BACKEND == "nccl":
        torch.cuda.synchronize()


def gbit_s(nbytes, seconds):
    return round(nbytes * 8 / seconds / 1e9, 3)


dist.init_process_group(
    BACKEND, init_method="tcp://%s:%s" % (os.environ["BURN_IN_MASTER"], os.environ["BURN_IN_PORT"]),
    rank=RANK, world_size=WORLD, timeout=datetime.timedelta(seconds=int(os.environ["BURN_IN_TIMEOUT"])))
device = torch.device("cuda", 0) if BACKEND == "nccl" else torch.device("cpu")
payload = torch.ones(NBYTES // 4, dtype=torch.float32, device=device)
ack = torch.zeros(1, dtype=torch.float32, device=device)


def exchange(src, dst, tensor):
    """``tensor`` from rank src to rank dst, acknowledged; the seconds it took, on src (None elsewhere)."""
    if RANK == src:
        sync()
        start = time.perf_counter()
        dist.send(tensor, dst)
        dist.recv(ack, dst)
        sync()
        return time.perf_counter() - start
    if RANK == dst:
        dist.recv(tensor, src)
        dist.send(ack, src)
    return None


PAIRS = [(src, dst) for src in range(WORLD) for dst in range(WORLD) if src != dst]
for src, dst in PAIRS:  # unmeasured: whatever a first exchange sets up is not counted in the figures below
    exchange(src, dst, ack)
# rates[dst]: this rank's bandwidth to dst, in Gbit/s
rates = torch.zeros(WORLD, dtype=torch.float64, device=device)
for src, dst in PAIRS:
    dist.barrier()
    seconds = exchange(src, dst, payload)
    if seconds is not None:
        rates[dst] = gbit_s(NBYTES, seconds)

dist.all_reduce(payload)  # once unmeasured: the connections and buffers of the collective are set up
sync()
dist.barrier()
start = time.perf_counter()
for _ in range(ROUNDS):
    dist.all_reduce(payload)
sync()
seconds = (time.perf_counter() - start) / ROUNDS

# Tensors, not all_gather_object: that one unpickles what the other ranks send, which nothing here authenticates.
gathered = [torch.zeros_like(rates) for rank in range(WORLD)]
dist.all_gather(gathered, rates)
if RANK == 0:
    # bus bandwidth: what each link carries in a ring all-reduce, comparable with the pairs' figures
    bus = gbit_s(NBYTES * 2 * (WORLD - 1) / WORLD, seconds)
    links = [{"from": NAMES[src], "to": NAMES[dst], "gbit_s": round(float(gathered[src][dst]), 3)}
             for src, dst in PAIRS]
    print("BURN_IN_RESULT " + json.dumps({
        "backend": BACKEND, "mib": NBYTES // (1024 * 1024), "hosts": NAMES,
        "links": links, "all_reduce_bus_gbit_s": bus}), flush=True)
dist.destroy_process_group()
