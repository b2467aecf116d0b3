// What viem.mjs and ethers.mjs share: their arguments, failing loudly (never hanging CI), printing what
// they saw, and waiting for new heads after a block.
//
// usage of either: node NAME.mjs HTTP_URL WS_URL PRIVATE_KEY RECIPIENT VALUE_WEI

const TIMEOUT_MS = 30_000;
// How many new heads each client must see after its transfer's block.
const HEADS_AFTER = 2;

/** The script's arguments, and fail(message): exit 1 with the message; also on a timeout or an unhandled error. */
export function start(name) {
  const fail = (message) => {
    console.error(`${name} client: ${message}`);
    process.exit(1);
  };
  const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);
  process.on("unhandledRejection", (e) => fail(e?.stack ?? String(e)));
  const [httpUrl, wsUrl, key, to, value] = process.argv.slice(2);
  if (!value) fail(`usage: node ${name}.mjs HTTP_URL WS_URL PRIVATE_KEY RECIPIENT VALUE_WEI`);
  const done = (seen) => {
    console.log(JSON.stringify(seen));
    clearTimeout(timer);
  };
  return { fail, done, httpUrl, wsUrl, key, to, value: BigInt(value) };
}

/** New heads as a client's subscription delivers them (seen(number, head)). */
export class Heads {
  constructor() {
    this.all = [];
    this.wake = () => {};
  }

  seen(number, head) {
    this.all.push({ number: Number(number), head });
    this.wake();
  }

  after(number) {
    return this.all.filter((h) => h.number > Number(number));
  }

  /** Until HEADS_AFTER heads above ``number`` arrived: a quiet chain seals no block, so each round
   * ``nudge()`` sends (and waits for) a transfer, then waits a little for its head. */
  async follow(number, nudge, fail) {
    for (let round = 0; this.after(number).length < HEADS_AFTER; round++) {
      if (round >= 2 * HEADS_AFTER) fail(`saw ${this.after(number).length} new heads after block ${number}`);
      const count = this.all.length;
      await nudge();
      if (this.all.length === count) {
        await new Promise((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 2_000);
        });
      }
    }
    return this.after(number);
  }
}
