/**
 * One plain downloader for the floor measurement: on each message it GETs the key and reads the
 * body to the end, then reports. Runs in its own thread so N of them download truly in parallel,
 * as N generator processes do. Plain JavaScript: TS loaders do not reach worker threads on Node 20.
 */
import { parentPort, workerData } from "node:worker_threads";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";

const { endpoint, bucket } = workerData;
const client = new S3Client({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  forcePathStyle: true,
  responseChecksumValidation: "WHEN_REQUIRED",
});

parentPort?.on("message", async (key) => {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  let bytes = 0;
  for await (const chunk of r.Body) bytes += chunk.byteLength;
  parentPort?.postMessage(bytes);
});
