/**
 * Where a process's CPU time went within a time window, from the `.cpuprofile` Node writes with
 * `--cpu-prof`: self time by area (the deletion module, MikroORM, NestJS, BullMQ, the PostgreSQL
 * driver, Node's own, garbage collection, idle) and the functions with the most self time.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** The window, in milliseconds from the profile's start. */
  fromMs: number;
  toMs: number;
  /** Milliseconds of the window the samples cover. */
  windowMs: number;
  /** Busy (not idle) share of the window, 0-1. */
  busy: number;
  /** Milliseconds of self time by area, largest first. */
  areas: Record<string, number>;
  /** The functions with the most self time: `name (file:line)` and milliseconds. */
  top: { frame: string; ms: number }[];
}

/**
 * Summarizes the samples of `file` taken between `fromMs` and `toMs` after the profile started
 * (`undefined`: its start, its end).
 */
export async function summarizeProfile(file: string, fromMs?: number, toMs?: number, topCount = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const areas = new Map<string, number>();
  const frames = new Map<string, number>();
  let time = profile.startTime;
  let covered = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]!;
    const at = (time - profile.startTime) / 1000;
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if ((fromMs !== undefined && at < fromMs) || (toMs !== undefined && at > toMs)) {
      continue;
    }
    const node = byId.get(profile.samples[i]!)!;
    const area = areaOf(node.callFrame);
    covered += ms;
    if (area === 'idle') {
      idle += ms;
    }
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const { functionName, url, lineNumber } = node.callFrame;
    const frame = `${functionName || '(anonymous)'} (${shortUrl(url)}:${lineNumber + 1})`;
    frames.set(frame, (frames.get(frame) ?? 0) + ms);
  }
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]);
  return {
    fromMs: Math.round(fromMs ?? 0),
    toMs: Math.round(toMs ?? (profile.endTime - profile.startTime) / 1000),
    windowMs: Math.round(covered),
    busy: covered > 0 ? Number(((covered - idle) / covered).toFixed(3)) : 0,
    areas: Object.fromEntries(sorted(areas).map(([area, ms]) => [area, Math.round(ms)])),
    top: sorted(frames)
      .filter(([frame]) => !frame.startsWith('(idle)') && !frame.startsWith('(program)'))
      .slice(0, topCount)
      .map(([frame, ms]) => ({ frame, ms: Math.round(ms) })),
  };
}

/** Milliseconds between the profile's start and its end (`--cpu-prof` ends it at the process's exit). */
export async function profileLengthMs(file: string): Promise<number> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  return (profile.endTime - profile.startTime) / 1000;
}

function areaOf({ functionName, url }: ProfileNode['callFrame']): string {
  if (functionName === '(idle)') {
    return 'idle';
  }
  if (functionName === '(garbage collector)') {
    return 'gc';
  }
  if (functionName === '(program)' || (!url && functionName.startsWith('('))) {
    return 'node (native)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) {
    return pkg.startsWith('@mikro-orm/') ? '@mikro-orm' : pkg.startsWith('@nestjs/') ? '@nestjs' : pkg;
  }
  if (url.includes('/lib/')) {
    return 'deletion module (lib/)';
  }
  if (url.includes('/sample-app/')) {
    return 'sample app';
  }
  if (url.startsWith('node:') || !url) {
    return 'node (js)';
  }
  return 'other';
}

function shortUrl(url: string): string {
  const pkg = /node_modules\/(.*)$/.exec(url)?.[1];
  if (pkg) {
    return pkg;
  }
  const own = /\/((?:lib|sample-app|bench)\/.*)$/.exec(url)?.[1];
  return own ?? url;
}
