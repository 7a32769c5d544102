import { timingSafeEqual } from 'node:crypto';

/** Whether `passcode` is `login`'s in `users`, compared in constant time. */
export function checkPasscode(
  users: ReadonlyMap<string, string>,
  login: string | undefined,
  passcode: string | undefined,
): boolean {
  const expected = login === undefined ? undefined : users.get(login);
  if (expected === undefined || passcode === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(passcode);
  return a.length === b.length && timingSafeEqual(a, b);
}
