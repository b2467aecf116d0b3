// A block with full transactions as viem and ethers v6 read it (getBlock / getBlock(n, true)), and a
// transaction by hash: prints what each saw of the block's first transaction. For a block that holds
// a deposit (OP Stack's type 0x7e), which neither library signs but both must read.
//
// usage: node blocks.mjs HTTP_URL BLOCK_NUMBER TX_HASH
import { createPublicClient, http } from "viem";
import { JsonRpcProvider } from "ethers";

const [url, number, hash] = process.argv.slice(2);
const timer = setTimeout(() => { console.error("timed out"); process.exit(1); }, 30_000);

const viem = createPublicClient({ transport: http(url) });
const vBlock = await viem.getBlock({ blockNumber: BigInt(number), includeTransactions: true });
const vTx = await viem.getTransaction({ hash });

const ethers = new JsonRpcProvider(url, undefined, { staticNetwork: true });
const eBlock = await ethers.getBlock(Number(number), true);
const eTx = await ethers.getTransaction(hash);
const eReceipt = await ethers.getTransactionReceipt(hash);

console.log(JSON.stringify({
  viem: { first: vBlock.transactions[0].hash, count: vBlock.transactions.length, to: vTx.to,
          value: vTx.value.toString(), typeHex: vTx.typeHex },
  ethers: { first: eBlock.prefetchedTransactions[0].hash, count: eBlock.transactions.length, to: eTx.to,
            value: eTx.value.toString(), type: eTx.type, status: eReceipt.status },
}));
clearTimeout(timer);
