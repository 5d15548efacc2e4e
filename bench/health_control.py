"""/health of an attacked server and of an idle control server (same settings, started alike) polled alternately
every 20 ms for 12 s, while the poller times its own 20 ms sleeps: tells a stall of the attacked server from the
machine's scheduling (the README's "Why /health has polls over 50 ms"). One JSON line per run.

    uv run --frozen --all-extras python bench/health_control.py [RUNS] ['{"ENV": "value"}']
"""
import json, subprocess, sys, time, os, tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpx
from bench.common import serve_api
from core.settings import ROOT

def pct(xs, q): xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
extra = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
out = []
for run in range(runs):
    tmp = tempfile.mkdtemp()
    env = {"SERVER_WORKERS": "1", "PREDICTION_LOG_URL": f"sqlite:///{tmp}/log.db", "LOG_LEVEL": "WARNING",
           "TEXT_HASH_KEY": "test-key-0123456789abcdef", **extra}
    envb = {**env, "PREDICTION_LOG_URL": f"sqlite:///{tmp}/logb.db"}
    with serve_api(env) as a, serve_api(envb) as b:
        attacker = subprocess.Popen([sys.executable, "-m", "bench.bench_adversarial", "--attack", a, "--attack-seconds", "15"],
                                    cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert attacker.stdout.readline().strip() == "attacking"
        time.sleep(1.5)
        la, lb, lag = [], [], []
        with httpx.Client(base_url=a, timeout=30) as ca, httpx.Client(base_url=b, timeout=30) as cb:
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                for c, l in ((ca, la), (cb, lb)):
                    t = time.perf_counter(); assert c.get("/health").status_code == 200; l.append(time.perf_counter() - t)
                t = time.perf_counter(); time.sleep(0.02); lag.append(time.perf_counter() - t - 0.02)
        report = json.loads(attacker.stdout.readline())
        attacker.kill(); attacker.wait()
    row = {"run": run, "attacked_p99": round(pct(la, .99), 1), "attacked_max": round(max(la) * 1000, 1),
           "attacked_median": round(pct(la, .5), 1), "idle_p99": round(pct(lb, .99), 1), "idle_max": round(max(lb) * 1000, 1),
           "poller_sleep_lag_max": round(max(lag) * 1000, 1), "polls": len(la), "texts": report["texts"],
           "over50_attacked": sum(x > .05 for x in la), "over50_idle": sum(x > .05 for x in lb),
           "load": os.getloadavg()[0]}
    print(json.dumps(row), flush=True)
