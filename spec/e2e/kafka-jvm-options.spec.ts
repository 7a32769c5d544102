import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_JVM_OPTIONS, javaCommand, jvmArguments } from '../../scripts/kafka.js';

// The JVM options of the test Kafka (scripts/kafka.ts) with STOMPBUS_KAFKA_JVM_EXTRA: a
// collector named there replaces G1, and the JVM accepts the result.
const isCi = process.env.CI === 'true' || process.env.CI === '1';
const hasJava = spawnSync(javaCommand(), ['-version']).status === 0;
if (!hasJava && !isCi) {
  console.warn('!!! kafka-jvm-options.spec.ts: the JVM checks are SKIPPED: no java');
}

/** The JVM's exit status with `args` and `-version` (starts no broker). */
function javaStatus(args: readonly string[]): number | null {
  return spawnSync(javaCommand(), [...args, '-version'], { encoding: 'utf8' }).status;
}

describe('the test Kafka JVM options', () => {
  it('are the defaults, then the extra flags', () => {
    expect(jvmArguments(DEFAULT_JVM_OPTIONS, [])).toEqual([...DEFAULT_JVM_OPTIONS]);
    const gcLog = '-Xlog:gc:file=/tmp/kafka-gc.log:uptime';
    expect(jvmArguments(DEFAULT_JVM_OPTIONS, [gcLog])).toEqual([...DEFAULT_JVM_OPTIONS, gcLog]);
  });

  it('drop G1 and its settings when the extra flags pick another collector', () => {
    const args = jvmArguments(DEFAULT_JVM_OPTIONS, ['-XX:+UseShenandoahGC']);
    expect(args).not.toContain('-XX:+UseG1GC');
    expect(args).not.toContain('-XX:MaxGCPauseMillis=20');
    expect(args).toContain('-XX:+UseShenandoahGC');
    expect(args).toContain('-Xmx768m');
    // G1 named again keeps the G1 settings.
    expect(jvmArguments(DEFAULT_JVM_OPTIONS, ['-XX:+UseG1GC'])).toContain(
      '-XX:MaxGCPauseMillis=20',
    );
  });

  it.skipIf(!hasJava && !isCi)('are accepted by the JVM, where both collectors are not', () => {
    expect(javaStatus(jvmArguments(DEFAULT_JVM_OPTIONS, []))).toBe(0);
    expect(javaStatus(jvmArguments(DEFAULT_JVM_OPTIONS, ['-XX:+UseZGC']))).toBe(0);
    expect(javaStatus(jvmArguments(DEFAULT_JVM_OPTIONS, ['-XX:+UseShenandoahGC']))).toBe(0);
    // What the flags gave before: both collectors, which the JVM refuses.
    expect(javaStatus([...DEFAULT_JVM_OPTIONS, '-XX:+UseZGC'])).not.toBe(0);
  });
});
