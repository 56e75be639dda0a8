import { describe, expect, it } from 'vitest';
import { PhaseClock, parsePhaseLines, phaseLine, type PushPhase } from '../../hooks/phase-clock.js';

describe('PhaseClock', () => {
  it('reports each phase as the time since the previous one ended', () => {
    let now = 1000;
    const seen: [PushPhase, number][] = [];
    const clock = new PhaseClock((p, ms) => seen.push([p, ms]), () => now);
    now = 1250;
    clock.end('receive');
    now = 4250;
    clock.end('compile');
    expect(seen).toEqual([
      ['receive', 250],
      ['compile', 3000],
    ]);
  });
});

describe('phase lines', () => {
  it('reads back what the push log printed, through git\'s remote: prefix', () => {
    const output = ['remote: -----> Building\n', `remote: ${phaseLine('receive', 120)}`, `remote: ${phaseLine('old drained', 1500)}`, 'remote:        phase nonsense: 1.00 s'].join('');
    expect(Object.fromEntries(parsePhaseLines(output))).toEqual({ receive: 120, 'old drained': 1500 });
  });
});
