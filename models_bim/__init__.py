"""BIM for the twin: read IFC files into ``twin.domain.TwinModel`` and write synthetic schools.

- ``models_bim.load.read_model``: IFC2X3/IFC4/IFC4X3 file -> site, buildings, storeys, rooms, devices.
- ``models_bim.generate.generate_school`` / ``generate_network``: synthetic IFC4 schools.
- ``models_bim.errors.IfcReadError``: what every unreadable input raises.
"""
