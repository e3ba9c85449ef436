/**
 * Preloaded into the chaos run's server (`node --import`): Date.now() plus an
 * offset read from the file named by SEQUENT_CHAOS_CLOCK_FILE, read again on
 * SIGUSR2. It lets the harness step the server's wall clock back and forth
 * without root and without libfaketime (which this machine does not have),
 * and the offset survives a restart, as a wrong system clock would. Only the
 * wall clock moves: timers and performance.now() keep real time, as they do
 * when an NTP step hits a real machine.
 */
import { readFileSync } from 'node:fs';

const file = process.env['SEQUENT_CHAOS_CLOCK_FILE'];
if (file !== undefined && file !== '') {
  const realNow = Date.now.bind(Date);
  const read = (): number => {
    try {
      const value = Number(readFileSync(file, 'utf8').trim());
      return Number.isFinite(value) ? value : 0;
    } catch {
      return 0;
    }
  };
  let offset = read();
  process.on('SIGUSR2', () => {
    offset = read();
  });
  Date.now = () => realNow() + offset;
}
