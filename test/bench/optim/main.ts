/**
 * The GRPO step's `optimizer` phase on the host, old against new in one process: global-norm
 * clipping then AdamW over LoRA factors the size of Qwen2.5-0.5B's r = 16 all-linear adapter
 * (8.8 M parameters, seeded), as the run loop times it (`services/trainer/src/runs/run-loop.ts`).
 * `old` is the previous code kept in test/support/optim-reference (clipGradNorm's two passes,
 * then the step); `new` is `AdamW.clippedStep`. Rounds alternate old and new so that both see the
 * same machine state; each round starts from the same fresh gradients (copied in untimed). Prints
 * the median and minimum wall and CPU (process.cpuUsage: user + system) milliseconds of each, and checks that
 * both ended on the same bits.
 */
import { referenceAdamWStep, referenceClipGradNorm } from "@loracast/dev-support/optim-reference";
import { AdamW, type AdamWState, TORCH_ADAMW_DEFAULTS } from "@loracast/shared/optim";
import { parseCommandLine, usageError } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { percentile } from "../percentile.ts";

const cli = {
  usage: "npm run bench:optim -- [flags]",
  about:
    "The trainer's optimizer phase (gradient clipping + AdamW) over 8.8 M LoRA parameters on the host: the previous code (a clipping pass, then AdamW.step; kept in test/support/optim-reference) against AdamW.clippedStep, alternating, median of the rounds.",
  flags: {
    rounds: {
      type: "string",
      default: "15",
      help: "timed steps of each, 1 to 1000 (after 2 untimed warm-up steps each)",
    },
    rank: {
      type: "string",
      default: "16",
      help: "LoRA rank, 1 to 256 (16: 8.8 M parameters on Qwen2.5-0.5B)",
    },
  },
} as const;
const { values } = parseCommandLine(cli);
const rounds = Number(values.rounds);
const rank = Number(values.rank);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000)
  usageError(cli, `--rounds takes an integer from 1 to 1000, not ${values.rounds}`);
// Rank 256 is 141 M parameters, four copies of them: the most a 24 GiB machine holds comfortably.
if (!Number.isInteger(rank) || rank < 1 || rank > 256)
  usageError(cli, `--rank takes an integer from 1 to 256, not ${values.rank}`);

// Qwen2.5-0.5B's linear layers (in, out features) × 24 layers: every module gets A [r, in], B [out, r].
const MODULES: ReadonlyArray<readonly [string, number, number]> = [
  ["q_proj", 896, 896],
  ["k_proj", 896, 128],
  ["v_proj", 896, 128],
  ["o_proj", 896, 896],
  ["gate_proj", 896, 4864],
  ["up_proj", 896, 4864],
  ["down_proj", 4864, 896],
];
const rng = createRng(18);
const random = (n: number, scale: number) => {
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = (rng.next() * 2 - 1) * scale;
  return t;
};
const initial = new Map<string, Float32Array>();
const gradients = new Map<string, Float32Array>();
for (let layer = 0; layer < 24; layer++)
  for (const [name, inF, outF] of MODULES)
    for (const [factor, n] of [
      ["A", rank * inF],
      ["B", outF * rank],
    ] as const) {
      const key = `base_model.model.model.layers.${layer}.${name}.lora_${factor}.weight`;
      initial.set(key, random(n, 0.02));
      // ‖g‖ ≈ 0.58 · 1e-3 · √8.8 M ≈ 1.7: above maxGradNorm 1, so the clip scales (its costly case).
      gradients.set(key, random(n, 1e-3));
    }
const count = [...initial.values()].reduce((n, t) => n + t.length, 0);
const copy = (m: ReadonlyMap<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));

const settings = { ...TORCH_ADAMW_DEFAULTS, weightDecay: 0.01 };
const lr = 1e-5;
const maxNorm = 1;
const oldParams = copy(initial);
const oldState: AdamWState = { step: 0, moments: new Map() };
const oldGrads = copy(gradients);
const newParams = copy(initial);
const opt = new AdamW(settings);
const newGrads = copy(gradients);

const time = (f: () => void) => {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  f();
  const wall = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1000 };
};
const runOld = () => {
  for (const [k, g] of gradients) oldGrads.get(k)?.set(g);
  return time(() => {
    if (Number.isFinite(referenceClipGradNorm(oldGrads, maxNorm)))
      referenceAdamWStep(settings, oldState, oldParams, oldGrads, lr);
  });
};
const runNew = () => {
  for (const [k, g] of gradients) newGrads.get(k)?.set(g);
  return time(() => opt.clippedStep(newParams, newGrads, lr, maxNorm));
};

for (let i = 0; i < 2; i++) {
  runOld();
  runNew();
}
const old: { wall: number; cpu: number }[] = [];
const fresh: { wall: number; cpu: number }[] = [];
for (let i = 0; i < rounds; i++) {
  // Alternating which goes first, so neither always runs on the other's warm caches.
  if (i % 2 === 0) {
    old.push(runOld());
    fresh.push(runNew());
  } else {
    fresh.push(runNew());
    old.push(runOld());
  }
}
let same = oldState.step === opt.state.step;
for (const [k, p] of newParams) {
  const o = oldParams.get(k);
  const a = Buffer.from(p.buffer);
  if (o === undefined || !a.equals(Buffer.from(o.buffer))) same = false;
}
// Median and minimum: on a shared machine the minimum is the least disturbed run.
const med = (xs: { wall: number; cpu: number }[], key: "wall" | "cpu") => {
  const v = xs.map((x) => x[key]);
  return `${percentile(v, 50).toFixed(1)} (min ${Math.min(...v).toFixed(1)})`;
};
console.log(`parameters: ${(count / 1e6).toFixed(2)} M in ${initial.size} tensors; rounds: ${rounds} each`);
console.log(`old (a clipping pass + AdamW.step): wall ${med(old, "wall")} ms, cpu ${med(old, "cpu")} ms`);
console.log(`new (AdamW.clippedStep): wall ${med(fresh, "wall")} ms, cpu ${med(fresh, "cpu")} ms`);
console.log(`parameters after ${opt.state.step} steps bit-identical: ${same}`);
if (!same) process.exit(1);
