import type { Message } from '../broker/message.js';
import type { Fanout } from './fanout.js';

/** The embedded default: a topic message goes straight to the local subscribers. */
export class LocalFanout implements Fanout {
  private deliver: (message: Message) => void = () => {};

  async start(deliver: (message: Message) => void): Promise<void> {
    this.deliver = deliver;
  }

  publish(message: Message): void {
    this.deliver(message);
  }

  async stop(): Promise<void> {}
}
