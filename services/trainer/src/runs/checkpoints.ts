/**
 * Run checkpoints in the object store: one safetensors file per checkpoint with the LoRA factors
 * and AdamW's moments, the loop's position in `__metadata__`, and a `latest.json` pointer written
 * after it. Everything else a step needs (its prompts, its sampling seed) is derived from the run
 * seed and the step number, so this is all a resumed run needs to continue exactly.
 */
import type { AdamWState } from "@loracast/shared/optim";
import {
  decodeSafetensors,
  encodeSafetensors,
  type TensorInput,
  toFloat32,
} from "@loracast/shared/safetensors";
import { checkpointKey, latestCheckpointKey, type ObjectStore } from "@loracast/shared/store";
import { z } from "zod";

/** Where a run stands at a checkpoint: steps done, and the newest version it published and its step. */
export interface CheckpointState {
  /** Steps completed. */
  step: number;
  /** The newest version this run published, and the step whose parameters it holds. */
  version: number;
  versionStep: number;
}

/**
 * Everything a run resumes from: its position, the LoRA factors by PEFT key (float32), the policy
 * of its newest version when that differs, and AdamW's state.
 */
export interface Checkpoint {
  state: CheckpointState;
  params: Map<string, Float32Array>;
  /**
   * The parameters of version `state.version` when they are not `params` (a checkpoint off the
   * publish cadence): the rollout policy a resumed run samples from until its next publish, so it
   * need not publish an off-cadence version to have one. Null when `versionStep === step`.
   */
  policy: Map<string, Float32Array> | null;
  optimizer: AdamWState;
}

const stateSchema = z.object({
  step: z.number().int().nonnegative(),
  version: z.number().int().nonnegative(),
  versionStep: z.number().int().nonnegative(),
  adamStep: z.number().int().nonnegative(),
});

/**
 * Saves and loads run checkpoints in the object store (`runs/<run>/checkpoints/<step>.safetensors`,
 * then `latest.json`): `save` returns the checkpoint's key; `latest` the newest one, or null.
 */
export class CheckpointStore {
  constructor(private readonly objects: ObjectStore) {}

  async save(run: string, c: Checkpoint): Promise<string> {
    const tensors: Record<string, TensorInput> = {};
    for (const [key, p] of c.params) {
      tensors[`param.${key}`] = { dtype: "F32", shape: [p.length], data: p };
      const mv = c.optimizer.moments.get(key);
      if (mv !== undefined) {
        tensors[`adam_m.${key}`] = { dtype: "F32", shape: [mv.m.length], data: mv.m };
        tensors[`adam_v.${key}`] = { dtype: "F32", shape: [mv.v.length], data: mv.v };
      }
    }
    for (const [key, p] of c.policy ?? [])
      tensors[`policy.${key}`] = { dtype: "F32", shape: [p.length], data: p };
    const state = JSON.stringify({ ...c.state, adamStep: c.optimizer.step });
    const key = checkpointKey(run, c.state.step);
    await this.objects.put(key, encodeSafetensors(tensors, { state }));
    await this.objects.put(latestCheckpointKey(run), new TextEncoder().encode(JSON.stringify({ key })));
    return key;
  }

  /** The newest checkpoint, or null when the run has none; a damaged one is an error, not a restart. */
  async latest(run: string): Promise<Checkpoint | null> {
    const pointer = await this.objects.get(latestCheckpointKey(run));
    if (pointer === null) return null;
    const { key } = z.object({ key: z.string() }).parse(JSON.parse(new TextDecoder().decode(pointer)));
    const bytes = await this.objects.get(key);
    if (bytes === null) throw new Error(`checkpoint ${key} named by latest.json is missing`);
    const file = decodeSafetensors(bytes);
    if (!file.ok) throw new Error(`checkpoint ${key}: ${file.error.message}`);
    const state = stateSchema.parse(JSON.parse(file.value.metadata.state ?? "null"));
    const params = new Map<string, Float32Array>();
    const policy = new Map<string, Float32Array>();
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    const floats = (name: string) => {
      const t = file.value.tensors.get(name);
      return t === undefined ? null : Float32Array.from(toFloat32(t.dtype, t.bytes));
    };
    for (const name of file.value.tensors.keys()) {
      if (!name.startsWith("param.")) continue;
      const param = name.slice("param.".length);
      params.set(param, floats(name) as Float32Array);
      const m = floats(`adam_m.${param}`);
      const v = floats(`adam_v.${param}`);
      if (m !== null && v !== null) moments.set(param, { m, v });
      const p = floats(`policy.${param}`);
      if (p !== null) policy.set(param, p);
    }
    return {
      state: { step: state.step, version: state.version, versionStep: state.versionStep },
      params,
      policy: policy.size > 0 ? policy : null,
      optimizer: { step: state.adamStep, moments },
    };
  }
}
