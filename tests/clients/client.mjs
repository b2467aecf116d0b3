// A client in another language, as an L2 operator's users would write one: the protos loaded
// at run time by @grpc/grpc-js, transactions signed by ethers.js, nothing from this repo's Python.
//
//   node tests/clients/client.mjs SEQUENCER_ADDRESS ROLLUPS_ADDRESS
//
// Prints one JSON document with what it saw; tests/clients/test_node_client.py checks it.
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { Transaction, Wallet } from 'ethers';

const [sequencerAddress, rollupsAddress] = process.argv.slice(2);
const PROTOS = new URL('../../protos/', import.meta.url).pathname;
// anvil/hardhat dev account 2: funded by the devnet genesis.
const KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';
const TO = '0x000000000000000000000000000000000000cafe';

const definition = protoLoader.loadSync(
  ['l2node/sequencer/v1/sequencer.proto', 'l2node/rollups/v1/rollups.proto'],
  { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true },
);
const { l2node } = grpc.loadPackageDefinition(definition);
const credentials = grpc.credentials.createInsecure();
const sequencer = new l2node.sequencer.v1.SequencerService(sequencerAddress, credentials);
const rollups = new l2node.rollups.v1.RollupsService(rollupsAddress, credentials);

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 10_000 }, (error, reply) => (error ? reject(error) : resolve(reply)));
  });
}

async function failure(client, method, request) {
  try {
    await call(client, method, request);
    return null;
  } catch (error) {
    return { code: error.code, details: error.details };
  }
}

const wallet = new Wallet(KEY);
const signed = [];
for (let nonce = 0; nonce < 5; nonce += 1) {
  signed.push(await wallet.signTransaction({
    type: 2, chainId: 901, nonce, to: TO, value: 1000n + BigInt(nonce), gasLimit: 21000n,
    maxFeePerGas: 10n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n,
  }));
}
const sent = await call(sequencer, 'SendRawTransactions', {
  raw_transactions: signed.map((raw) => Buffer.from(raw.slice(2), 'hex')),
});
const receipts = [];
for (const result of sent.results) {
  for (;;) {
    const { receipt } = await call(sequencer, 'GetTransactionReceipt', { tx_hash: result.tx_hash });
    if (receipt.status !== 'RECEIPT_STATUS_PENDING') {
      receipts.push(receipt);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
const account = await call(sequencer, 'GetAccount', { address: TO });
console.log(JSON.stringify({
  sender: wallet.address,
  ethers_hashes: signed.map((raw) => Transaction.from(raw).hash),
  sent_hashes: sent.results.map((r) => r.tx_hash),
  statuses: receipts.map((r) => r.status),
  senders: receipts.map((r) => r.from),
  balance: account.balance,
  garbage: await failure(sequencer, 'SendRawTransaction', { raw_transaction: Buffer.from('02c0', 'hex') }),
  replay: await failure(sequencer, 'SendRawTransaction', { raw_transaction: Buffer.from(signed[0].slice(2), 'hex') }),
  outputs: await failure(rollups, 'ListOutputs', {}),
}));
sequencer.close();
rollups.close();
