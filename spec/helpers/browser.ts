import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterEach, expect } from 'vitest';
import { CHROMIUM, CHROMIUM_ARGS } from './tools.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the specs save screenshots (gitignored). */
export const SCREENSHOTS = join(ROOT, '.cache', 'screenshots');

/** Debian's Chromium, headless, through playwright-core (which downloads nothing). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** examples/chat/server.mjs running as a child process of the test. */
export interface ChatServer {
  /** The page, e.g. `http://127.0.0.1:40123/`. */
  readonly url: string;
  readonly pid: number;
  /** Its stdout and stderr so far. */
  output(): string;
}

const chatServers = new Map<number, ChildProcess>();
const contexts = new Set<BrowserContext>();

/** Starts the chat example's web server on a free port, pointing pages at `brokerURL`. */
export async function startChat(brokerURL: string, args: string[] = []): Promise<ChatServer> {
  const argv = ['examples/chat/server.mjs', '--port', '0', '--broker', brokerURL, ...args];
  const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not start examples/chat/server.mjs');
  const pid = child.pid;
  chatServers.set(pid, child);
  let output = '';
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chat server silent: ${output}`)), 10_000);
    child.once('exit', (code) => reject(new Error(`chat server exited (${code}): ${output}`)));
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      const found = /chat on (http:\/\/\S+)/.exec(output);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
  });
  return { url, pid, output: () => output };
}

/**
 * Opens the chat page in a browser context of its own (its own cookies and
 * storage: a separate user) as `name` in `room`, and waits until it is connected.
 */
export async function openChat(
  browser: Browser,
  chat: ChatServer,
  name: string,
  room = 'lobby',
): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 960, height: 560 } });
  contexts.add(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${chat.url}?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`);
  await waitForState(page, 'connected').catch((error: Error) => {
    throw new Error(`${name}'s page did not connect: ${error.message}; page errors: ${errors}`);
  });
  // Joined: the form is gone, the chat is there.
  expect(await page.isVisible('#join')).toBe(false);
  expect(await page.isVisible('#log')).toBe(true);
  return page;
}

/** Waits until the page's status says `state` (connected, reconnecting, …). */
export async function waitForState(page: Page, state: string, timeoutMs = 10_000): Promise<void> {
  await page.locator(`#status[data-state="${state}"]`).waitFor({ timeout: timeoutMs });
}

/** Types a message into the page and sends it, to the room or privately `to` someone. */
export async function say(page: Page, text: string, to = ''): Promise<void> {
  // Typed when given; else cleared (the field is hidden on a page without private messages).
  if (to) await page.fill('#to', to);
  else await page.fill('#to', '', { force: true });
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** The lines of the page's log, as `kind|line text`. */
export function logLines(page: Page): Promise<string[]> {
  return page.$$eval('#log li', (items) =>
    items.map((li) => `${li.getAttribute('data-kind')}|${li.textContent}`),
  );
}

/** Waits until the page's log has a line `kind|text`. */
export async function waitForLine(page: Page, line: string, timeoutMs = 10_000): Promise<void> {
  await expect.poll(() => logLines(page), { timeout: timeoutMs, interval: 50 }).toContain(line);
}

/** Saves a screenshot of the page under .cache/screenshots/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

afterEach(async () => {
  const list = [...contexts];
  contexts.clear();
  await Promise.allSettled(list.map((c) => c.close()));
  const children = [...chatServers.values()];
  chatServers.clear();
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(resolve, 5_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
        }),
    ),
  );
});
