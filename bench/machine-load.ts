import { readFileSync } from 'node:fs';

/** Busy CPU seconds of the whole machine (every core, every process) since boot, from /proc/stat. */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy; guest time is already in user.
  const busyTicks = fields.reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
  // NOTE: /proc/stat counts in USER_HZ, 100 on every common Linux build.
  return busyTicks / 100;
}
