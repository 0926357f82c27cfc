import { describe, expect, it } from 'vitest';
import type { ClaimRow } from './records.js';
import {
  StepBatcher,
  type FinishItem,
  type StepRequest,
  type StepResponse,
} from './step-batcher.js';

/** A step function that records what each step was asked and answers every item and claim. */
function recordingStep() {
  const steps: StepRequest[] = [];
  let nextId = 100;
  const step = async (request: StepRequest): Promise<StepResponse> => {
    steps.push(request);
    await new Promise((resolve) => setTimeout(resolve, 1));
    return {
      finished: request.items.map((_, i) => [i, []] as const),
      claims: request.claims.map(({ e, n }) =>
        Array.from({ length: n }, (): ClaimRow => [
          nextId++,
          1,
          1,
          1,
          'RUNNING',
          'EXECUTE',
          0,
          e,
          {},
          null,
          null,
        ]),
      ),
    };
  };
  return { steps, step };
}

const item = (s: number): FinishItem => ({ t: 1, s, r: 1, e: 'e1', k: 'c', now: 0 });

describe('StepBatcher', () => {
  it('puts ends and claims asked for together into one step, every waiter answered', async () => {
    const { steps, step } = recordingStep();
    const batcher = new StepBatcher(step, 512, 2);
    const ends = [batcher.finish(item(1)), batcher.finish(item(2))];
    const claims = [batcher.claim('e1', 1, 5), batcher.claim('e1', 2, 7)];
    const results = await Promise.all(ends);
    const claimed = await Promise.all(claims);
    expect(steps).toHaveLength(1);
    expect(steps[0]?.items.map((i) => i.s)).toEqual([1, 2]);
    expect(steps[0]?.claims).toEqual([{ e: 'e1', n: 3 }]);
    expect(steps[0]?.now).toBe(7);
    expect(results.every((r) => r.accepted)).toBe(true);
    expect(claimed.map((rows) => rows.map((row) => row[0]))).toEqual([[100], [101, 102]]);
  });

  it('never sends a claim in a step before an end asked for ahead of it (past maxBatch)', async () => {
    const { steps, step } = recordingStep();
    const batcher = new StepBatcher(step, 2, 2);
    const early = batcher.claim('e1', 1, 0);
    const ends = [1, 2, 3].map((s) => batcher.finish(item(s)));
    const late = batcher.claim('e1', 1, 0);
    await Promise.all([early, late, ...ends]);
    // The claim asked for before every end goes with the first two; the one asked for after
    // the third end waits for the step that holds it.
    expect(steps.map((r) => [r.items.map((i) => i.s), r.claims])).toEqual([
      [[1, 2], [{ e: 'e1', n: 1 }]],
      [[3], [{ e: 'e1', n: 1 }]],
    ]);
  });

  it('keeps a claim behind the ends ahead of it while a step is under way', async () => {
    const { steps, step } = recordingStep();
    const batcher = new StepBatcher(step, 1, 1);
    const done = [batcher.finish(item(1)), batcher.finish(item(2)), batcher.claim('e1', 4, 0)];
    await Promise.all(done);
    expect(steps.map((r) => [r.items.map((i) => i.s), r.claims.length])).toEqual([
      [[1], 0],
      [[2], 1],
    ]);
    await batcher.idle();
  });
});
