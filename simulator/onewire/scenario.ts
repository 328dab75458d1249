/**
 * The 1-Wire part of the default `edge-agent simulate` scenario: two DS18B20 on a fake w1
 * sysfs tree in a temp dir (a flow pipe near 62 °C, outdoors near −3 °C), plus the sensor
 * configs that read them. Call close() to remove the tree.
 */
import { sensorSchema, type SensorConfig } from '../../drivers/registry.js';
import { Signal } from '../signal.js';
import { SimulatedW1Tree } from './w1-tree.js';

export const SIM_W1_FLOW_ID = '28-0316a2795aff';
export const SIM_W1_OUTDOOR_ID = '28-04178a2c11ee';

export interface W1Simulation {
  tree: SimulatedW1Tree;
  sensors: SensorConfig[];
  close(): Promise<void>;
}

export interface W1SimulationOptions {
  seed?: number;
  /** 'files' (instant reads, default) or 'fifo' (reads block for the conversion). */
  mode?: 'files' | 'fifo';
  /** files mode: how often values change; default 1000 ms. */
  updateMs?: number;
  /** fifo mode: conversion time; default 750 ms. */
  conversionMs?: number;
  idPrefix?: string;
}

export async function createW1Simulation(o: W1SimulationOptions = {}): Promise<W1Simulation> {
  const seed = o.seed ?? 11;
  const p = o.idPrefix ?? '';
  const tree = await SimulatedW1Tree.create({
    mode: o.mode ?? 'files',
    updateMs: o.updateMs,
    conversionMs: o.conversionMs,
    devices: [
      {
        id: SIM_W1_FLOW_ID,
        signal: new Signal({
          setPoint: 62,
          noise: 0.1,
          driftAmplitude: 3,
          stepEveryMs: 600_000,
          seed,
        }),
      },
      {
        id: SIM_W1_OUTDOOR_ID,
        signal: new Signal({ setPoint: -3, noise: 0.05, driftAmplitude: 2, seed: seed + 1 }),
      },
    ],
  });
  const sensors = [
    { id: `${p}flow-ds18b20`, driver: 'ds18b20', deviceId: SIM_W1_FLOW_ID, w1Root: tree.root },
    {
      id: `${p}outdoor-ds18b20`,
      driver: 'ds18b20',
      deviceId: SIM_W1_OUTDOOR_ID,
      w1Root: tree.root,
    },
  ].map((s) => sensorSchema.parse(s));
  return { tree, sensors, close: () => tree.close() };
}
