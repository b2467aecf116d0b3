// viem, unchanged, against l2node's Ethereum JSON-RPC: a chain defined from the endpoint's eth_chainId,
// an EIP-1559 transfer signed by a local account (viem fills nonce, fees and gas from the endpoint),
// its receipt, the recipient's balance, the block number and the receipt's block, and new heads over
// WebSocket (watchBlocks on a webSocket transport: eth_subscribe newHeads) until two arrive after the
// transfer's block. Prints one JSON line of what it saw (common.mjs: arguments, failures, timeout).
import { createPublicClient, createWalletClient, defineChain, http, webSocket } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { Heads, start } from "./common.mjs";

const { fail, done, httpUrl, wsUrl, key, to, value } = start("viem");

async function main() {
  const chainId = await createPublicClient({ transport: http(httpUrl) }).getChainId();
  const chain = defineChain({
    id: chainId,
    name: "l2node devnet",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [httpUrl], webSocket: [wsUrl] } },
  });
  // The default polling interval (4 s) is for L1; blocks come every 250 ms here.
  const client = createPublicClient({ chain, transport: http(httpUrl), pollingInterval: 50, cacheTime: 0 });
  const ws = createPublicClient({ chain, transport: webSocket(wsUrl) });
  const account = privateKeyToAccount(key);
  const wallet = createWalletClient({ account, chain, transport: http(httpUrl) });

  const heads = new Heads();
  const unwatch = ws.watchBlocks({
    onBlock: (b) => heads.seen(b.number, { number: Number(b.number), hash: b.hash, parentHash: b.parentHash,
                                           baseFeePerGas: b.baseFeePerGas.toString() }),
    onError: (e) => fail(`newHeads: ${e.message}`),
  });

  const before = await client.getBalance({ address: to });
  const gas = await client.estimateGas({ account, to, value });
  const fees = await client.estimateFeesPerGas();
  const history = await client.getFeeHistory({ blockCount: 4, rewardPercentiles: [25, 75] });
  const hash = await wallet.sendTransaction({ to, value, type: "eip1559" });
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50, timeout: 20_000 });
  if (receipt.status !== "success") fail(`receipt status ${receipt.status}`);
  const balance = await client.getBalance({ address: to });
  const blockNumber = await client.getBlockNumber({ cacheTime: 0 });
  const block = await client.getBlock({ blockNumber: receipt.blockNumber });
  const byHash = await client.getBlock({ blockHash: receipt.blockHash, includeTransactions: true });
  const tx = await client.getTransaction({ hash });

  const after = await heads.follow(receipt.blockNumber, async () => {
    const filler = await wallet.sendTransaction({ to: account.address, value: 0n, type: "eip1559" });
    await client.waitForTransactionReceipt({ hash: filler, pollingInterval: 50, timeout: 20_000 });
  }, fail);
  unwatch();

  done({
    chainId,
    from: account.address,
    to,
    hash,
    gas: gas.toString(),
    maxFeePerGas: fees.maxFeePerGas.toString(),
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
    feeHistoryBlocks: history.gasUsedRatio.length,
    status: receipt.status,
    type: receipt.type,
    gasUsed: receipt.gasUsed.toString(),
    receiptBlockNumber: Number(receipt.blockNumber),
    receiptBlockHash: receipt.blockHash,
    txBlockHash: tx.blockHash,
    txValue: tx.value.toString(),
    balanceBefore: before.toString(),
    balance: balance.toString(),
    blockNumber: Number(blockNumber),
    block: { number: Number(block.number), hash: block.hash, transactions: block.transactions,
             baseFeePerGas: block.baseFeePerGas.toString() },
    byHashTransactions: byHash.transactions.map((t) => t.hash),
    heads: after.map((h) => h.head),
  });
  process.exit(0);
}

main().catch((e) => fail(e?.stack ?? String(e)));
