// Preloaded into the flood benchmark's brokers (`node --import
// bench/load/loop-delay.mjs ...`): prints the event loop's delay every 500 ms
// (`[loop-delay] <max ms> <p99 ms>`), so that a latency tail can be told
// apart: the broker's event loop held up (this figure) or not.
// Plain JavaScript: stompbus runs from dist/ with no TypeScript loader.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
setInterval(() => {
  const ms = (ns) => (ns / 1e6).toFixed(1);
  process.stdout.write(`[loop-delay] ${ms(histogram.max)} ${ms(histogram.percentile(99))}\n`);
  histogram.reset();
}, 500).unref();
