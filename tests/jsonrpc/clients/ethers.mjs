// ethers v6, unchanged, against l2node's Ethereum JSON-RPC: the network detected from eth_chainId, an
// EIP-1559 transfer from a Wallet (ethers fills nonce, fees and gas from the endpoint), its receipt,
// the recipient's balance, the block number and the receipt's block, and new heads over WebSocket
// (WebSocketProvider on("block"): eth_subscribe newHeads) until two arrive after the transfer's block.
// Prints one JSON line of what it saw (common.mjs: arguments, failures, timeout).
import { JsonRpcProvider, WebSocketProvider, Wallet } from "ethers";

import { Heads, start } from "./common.mjs";

const { fail, done, httpUrl, wsUrl, key, to, value } = start("ethers");

async function main() {
  // The default polling interval (4 s) is for L1; blocks come every 250 ms here.
  const provider = new JsonRpcProvider(httpUrl, undefined, { pollingInterval: 50, cacheTimeout: -1 });
  const network = await provider.getNetwork();
  const ws = new WebSocketProvider(wsUrl);
  if ((await ws.getNetwork()).chainId !== network.chainId) fail("the WebSocket serves another chain");
  const wallet = new Wallet(key, provider);

  const heads = new Heads();
  await ws.on("block", (number) => heads.seen(number, number));
  ws.on("error", (e) => fail(`WebSocket: ${e?.message ?? e}`));

  const before = await provider.getBalance(to);
  const gas = await provider.estimateGas({ from: wallet.address, to, value });
  const fees = await provider.getFeeData();
  const history = await provider.send("eth_feeHistory", ["0x4", "latest", [25, 75]]);
  const sent = await wallet.sendTransaction({ to, value, type: 2 });
  const receipt = await sent.wait(1, 20_000);
  if (receipt === null || receipt.status !== 1) fail(`receipt status ${receipt?.status}`);
  const balance = await provider.getBalance(to);
  const blockNumber = await provider.getBlockNumber();
  const block = await provider.getBlock(receipt.blockNumber);
  const full = await provider.getBlock(receipt.blockHash, true);
  const tx = await provider.getTransaction(sent.hash);

  const after = await heads.follow(receipt.blockNumber, async () => {
    const filler = await wallet.sendTransaction({ to: wallet.address, value: 0n, type: 2 });
    await filler.wait(1, 20_000);
  }, fail);
  // on("block") gives numbers: each head read back over the same WebSocket.
  const seen = [];
  for (const { number } of after) {
    const head = await ws.getBlock(number);
    seen.push({ number: head.number, hash: head.hash, parentHash: head.parentHash,
                baseFeePerGas: head.baseFeePerGas.toString() });
  }

  done({
    chainId: Number(network.chainId),
    from: wallet.address,
    to,
    hash: sent.hash,
    gas: gas.toString(),
    maxFeePerGas: fees.maxFeePerGas.toString(),
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
    feeHistoryBlocks: history.gasUsedRatio.length,
    status: receipt.status,
    type: receipt.type,
    gasUsed: receipt.gasUsed.toString(),
    receiptBlockNumber: receipt.blockNumber,
    receiptBlockHash: receipt.blockHash,
    txBlockHash: tx.blockHash,
    txValue: tx.value.toString(),
    balanceBefore: before.toString(),
    balance: balance.toString(),
    blockNumber,
    block: { number: block.number, hash: block.hash, transactions: [...block.transactions],
             baseFeePerGas: block.baseFeePerGas.toString() },
    byHashTransactions: full.prefetchedTransactions.map((t) => t.hash),
    heads: seen,
  });
  await ws.destroy();
  provider.destroy();
  process.exit(0);
}

main().catch((e) => fail(e?.stack ?? String(e)));
